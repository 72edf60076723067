"""The typed Activity document (the client's and the MCP server's answer) is the one `jitgrant activity
-o json` prints: the same calls, field for field, and the same counts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jitgrant.activity.attribution import Basis, Outcome
from jitgrant.activity.files import AuditLogFiles
from jitgrant.activity.grant import identity_of
from jitgrant.activity.report import Activity, read
from jitgrant.cli.activity import as_document

from .conftest import T0, audit_event, jsonl
from .test_grant import request

OTHER_REASON = (
    'RBAC: allowed by RoleBinding "jitgrant-requester/agents" of ClusterRole "jitgrant-requester" '
    'to ServiceAccount "oncall/agents"'
)


def test_the_typed_document_is_the_clis_json(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(
        jsonl(
            audit_event(audit_id="a", at=T0 + timedelta(minutes=1)),
            audit_event(audit_id="b", name="ledger", code=403, at=T0 + timedelta(minutes=2)),
            audit_event(
                audit_id="c",
                verb="get",
                resource="accessrequests",
                reason=OTHER_REASON,
                at=T0 + timedelta(minutes=3),
            ),
            audit_event(audit_id="d", user="system:serviceaccount:agents:someone-else", code=403),
        )
    )
    grant_status = {"cluster": "self", "namespace": "payments", "roleBinding": "jit-restart-checkout"}
    access = request(phase="Active", activatedAt=T0.isoformat(), grant=grant_status)
    grant = identity_of(access)
    source = AuditLogFiles(log)
    calls = read(source, grant)

    typed = Activity.of(access, grant, source.name, calls)
    assert [(c.audit_id, c.outcome, c.attribution) for c in typed.calls] == [
        ("a", Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON),
        ("b", Outcome.REFUSED, Basis.IDENTITY_WINDOW),
        ("c", Outcome.OTHER, Basis.IDENTITY_WINDOW),
    ]
    assert [c.name for c in typed.allowed_by_grant] == ["checkout"]
    assert [c.name for c in typed.refused] == ["ledger"]

    wire = typed.model_dump(mode="json", by_alias=True)
    printed = as_document(access, grant, source, calls)
    assert wire["calls"] == printed["calls"]
    assert wire["counts"] == printed["counts"]
    assert {k: wire[k] for k in ("request", "roleBinding", "identities", "source")} == {
        k: printed[k] for k in ("request", "roleBinding", "identities", "source")
    }
    # And it reads back: what an MCP client receives validates as the same model.
    assert Activity.model_validate(wire) == typed
