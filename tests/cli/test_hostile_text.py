"""Issue 20 §3: what an approver reads in a terminal (`jitgrant get/list/describe`, `-o jsonpath` on
a terminal, `audit query`, `activity`) shows text others wrote with its control characters escaped:
ESC sequences, carriage returns, backspaces, C1 controls, bidi overrides and zero-width characters
cannot erase, move, reorder or hide what is on the screen, and a row stays one line."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from hostile_text import ACTING, HOSTILE
from jitgrant.activity.attribution import AttributedCall, Basis, Outcome
from jitgrant.activity.events import ApiCall
from jitgrant.audit.query import GrantRow, format_table
from jitgrant.cli.activity import print_rows
from jitgrant.cli.describe import Paint, describe_request
from jitgrant.cli.requests import Table, _emit
from jitgrant.models.text import CELL_LIMIT, for_terminal

CASES = sorted(HOSTILE)
# Everything a terminal acts on: C0 except the newlines our own layout writes, DEL, C1, and the
# invisible or reordering characters.
C0_C1 = [chr(code) for code in (*range(0x00, 0x0A), *range(0x0B, 0x20), *range(0x7F, 0xA0))]


def request(text: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {
            "name": "restart-checkout",
            "namespace": "agents",
            "creationTimestamp": "2026-12-07T10:00:00Z",
            "annotations": {
                "jitgrant.dev/approvals": (
                    '[{"approver":"alice","decision":"deny","at":"2026-12-07T10:01:00Z",'
                    f'"reason":{_json(text)},"receipt":"r1"}}]'
                )
            },
        },
        "spec": {
            "policy": "prod-restart",
            "namespace": "payments",
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
                       "resourceNames": [text]}],
            "justification": text,
            "requester": {"username": f"oidc:https://issuer.example#{text}", "groups": [text]},
        },
        "status": {"phase": "Revoked", "reason": "Released", "message": f"Released by requester: {text}"},
    }  # fmt: skip


def _json(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def clean(output: str, *, lines: int | None = None) -> None:
    for char in [*ACTING, *C0_C1]:
        assert char not in output, (hex(ord(char)), output)
    if lines is not None:
        assert output.count("\n") == lines, output


@pytest.mark.parametrize("case", CASES)
def test_list_and_get_wide_rows_stay_one_line_without_control_characters(case: str) -> None:
    out = io.StringIO()
    Table(namespaced=False, wide=True, out=out).print([request(HOSTILE[case])])
    text = out.getvalue()
    clean(text, lines=2)  # the header and one row
    header, row = text.splitlines()
    assert header.startswith("NAMESPACE") and row.startswith("agents")
    assert len(row) < 700  # the justification and the scope are cut at CELL_LIMIT each


@pytest.mark.parametrize("case", CASES)
def test_describe_shows_every_field_with_its_control_characters_escaped(case: str) -> None:
    text = HOSTILE[case]
    for paint in (Paint(False), Paint(True)):
        shown = describe_request(
            request(text), cluster_role_rules=None, cluster_role_error=None, policy_spec=None, paint=paint
        )
        if paint.enabled:  # our own colour codes are the only ESC left
            shown = shown.replace("\x1b[31m", "").replace("\x1b[1m", "").replace("\x1b[0m", "")
        clean(shown)
        assert f"Justification:  {for_terminal(text)}\n" in shown
        assert f"denied by alice at 2026-12-07T10:01:00+00:00: {for_terminal(text)}\n" in shown
    lines = shown.splitlines()
    assert sum(line.startswith("Requester:") for line in lines) == 1
    assert sum(line.startswith("Justification:") for line in lines) == 1


def test_the_escapes_are_visible_and_say_what_was_there() -> None:
    assert for_terminal("a\x1b[2Jb\rc\x9bd\u202ee\u200bf\ng") == "a\\e[2Jb\\rc\\x9bd\\u202ee\\u200bf\\ng"
    assert for_terminal("x" * 1000, limit=CELL_LIMIT).endswith("x… (943 more characters)")
    assert len(for_terminal("x" * 1000, limit=CELL_LIMIT)) == CELL_LIMIT
    assert for_terminal("INC-42 redémarrer 重启 ✓") == "INC-42 redémarrer 重启 ✓"  # printable text untouched


@pytest.mark.parametrize("case", CASES)
def test_jsonpath_on_a_terminal_escapes_and_json_yaml_are_escaped_by_their_encoders(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = HOSTILE[case]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert _emit(request(text), "jsonpath={.spec.justification}{'\\n'}")
    assert _emit(request(text), "json")
    assert _emit(request(text), "yaml")
    clean(capsys.readouterr().out)
    # In a pipe jsonpath prints the value as stored, as kubectl does: scripts get what was written.
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert _emit(request(text), "jsonpath={.spec.justification}")
    assert capsys.readouterr().out == text


@pytest.mark.parametrize("case", CASES)
def test_audit_query_rows_stay_one_line_without_control_characters(case: str) -> None:
    text = HOSTILE[case]
    now = datetime(2026, 12, 7, 10, tzinfo=UTC)
    row = GrantRow(
        request_uid="u1", request="agents/restart-checkout", cluster="in-cluster", policy="prod",
        requester=f"oidc:https://issuer.example#{text}", proven_by="oidc", namespace="payments",
        scope=text, requested_at=now, activated_at=now, expires_at=None, ended_at=now,
        approvers=(text,), receipts=(), outcome="revoked", reason=f"Revoked by bob: {text}",
        first_seq=1, last_seq=2,
    )  # fmt: skip
    table = format_table([row])
    clean(table, lines=1)


@pytest.mark.parametrize("case", CASES)
def test_activity_rows_stay_one_line_without_control_characters(case: str) -> None:
    text = HOSTILE[case]
    call = ApiCall(
        audit_id="a1", time=datetime(2026, 12, 7, 10, tzinfo=UTC), verb="get", username="agent",
        groups=(), user_agent=text, resource="deployments", namespace="payments", name=text, code=200,
    )  # fmt: skip
    out = io.StringIO()
    attributed = AttributedCall(call=call, outcome=Outcome.THIS_GRANT, basis=Basis.IDENTITY_WINDOW)
    print_rows([attributed], out, header=True)
    clean(out.getvalue(), lines=2)
