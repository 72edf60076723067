"""`jitgrant policy lint DIR`: apply-time refusals are errors (exit 1), a reviewer's concerns warnings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from jitgrant.cli.main import main

BASE = """\
apiVersion: jitgrant.dev/v1alpha1
kind: GrantPolicy
metadata:
  name: {name}
spec:
  requesters:
    serviceAccounts: [{{namespace: agents, name: bot}}]
  namespaces: [payments]
  grants:
    - rules:
        - apiGroups: [""]
          resources: [pods]
          verbs: [get, list]
  maxDuration: 15m
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def lint_json(
    capsys: pytest.CaptureFixture[str], root: Path, *flags: str
) -> tuple[int, list[dict[str, str]]]:
    code = main(["policy", "lint", str(root), "-o", "json", *flags])
    return code, json.loads(capsys.readouterr().out)["findings"]


def test_a_read_only_namespaced_policy_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "quiet", BASE.format(name="quiet"))
    code, findings = lint_json(capsys, tmp_path, "--strict")
    assert (code, findings) == (0, [])


def test_what_apply_refuses_is_an_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "bad", BASE.format(name="bad").replace("maxDuration: 15m", "maxDuraton: 15m"))
    code, findings = lint_json(capsys, tmp_path)
    assert code == 1
    (finding,) = findings
    assert finding["file"] == str(path) and finding["level"] == "error"
    assert finding["field"] == "spec.maxDuraton" and finding["message"].startswith("PolicyInvalid")


def test_acceptdangerous_entry_that_names_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE.format(name="x").replace(
        "    - rules:", "    - clusterRole: viewer\n      acceptDangerous: [nodes]\n    - rules:"
    )
    write(tmp_path, "x", text)
    code, findings = lint_json(capsys, tmp_path)
    assert code == 1
    assert any(f["field"] == "spec.grants[0].acceptDangerous" and f["level"] == "error" for f in findings)


def test_reviewer_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        BASE.format(name="loose")
        .replace("verbs: [get, list]", "verbs: [get, delete]")
        .replace("resources: [pods]", "resources: [pods, secrets]")
        .replace("maxDuration: 15m", "maxDuration: 4h")
        .replace(
            "    serviceAccounts: [{namespace: agents, name: bot}]",
            "    serviceAccounts: [{namespace: agents, name: bot}, {namespace: ci, name: bot}]\n"
            "    groups: [platform]",
        )
    )
    write(tmp_path, "loose", text)
    code, findings = lint_json(capsys, tmp_path)
    assert code == 0  # warnings alone pass...
    messages = {f["field"]: f["message"] for f in findings}
    assert "can write (verbs delete)" in messages["spec.grants[0]"]
    assert "secrets" in messages["spec.grants[0].rules"]
    assert "2 namespaces" in messages["spec.requesters"] and "groups platform" in messages["spec.requesters"]
    assert "over an hour" in messages["spec.maxDuration"]
    code, _ = lint_json(capsys, tmp_path, "--strict")
    assert code == 1  # ...unless --strict


def test_approvers_who_are_also_requesters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        BASE.format(name="peer").replace(
            "    serviceAccounts: [{namespace: agents, name: bot}]", "    groups: [sre]"
        )
        + "  approval:\n    required: true\n    approvers:\n      groups: [sre]\n"
    )
    write(tmp_path, "peer", text)
    _, findings = lint_json(capsys, tmp_path)
    assert any(f["field"] == "spec.approval.approvers" and "sre" in f["message"] for f in findings)


def test_a_policy_shadowed_by_a_broader_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict = BASE.format(name="strict") + (
        "  approval:\n    required: true\n    approvers:\n      groups: [sre]\n"
    )
    broad = BASE.format(name="broad").replace("namespaces: [payments]", 'namespaces: ["*"]')
    write(tmp_path, "strict", strict)
    write(tmp_path, "broad", broad)
    _, findings = lint_json(capsys, tmp_path)
    shadowed = [f for f in findings if "shadowed" in f["message"]]
    assert [(f["policy"], f["message"].split(":")[0]) for f in shadowed] == [
        ("strict", "shadowed by policy broad")
    ]


def test_a_narrower_policy_does_not_shadow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a", BASE.format(name="a"))
    write(tmp_path, "b", BASE.format(name="b").replace("maxDuration: 15m", "maxDuration: 5m"))
    _, findings = lint_json(capsys, tmp_path)
    assert [f["policy"] for f in findings if "shadowed" in f["message"]] == ["b"]


def test_the_table_names_file_policy_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "long", BASE.format(name="long").replace("maxDuration: 15m", "maxDuration: 2h"))
    assert main(["policy", "lint", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"WARNING {path}: GrantPolicy long: spec.maxDuration: maxDuration 2h is over an hour" in out
