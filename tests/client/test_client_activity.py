"""Client.activity against the real operator on the embedded cluster, whose API server writes an audit
log as kube-apiserver's --audit-log-path does: the restart the agent did, the refused attempt, and
no view of another agent's grant."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant.activity.attribution import Basis, Outcome
from jitgrant.client import (
    ActivityUnavailable,
    AsyncClient,
    AuditLogFiles,
    Client,
    NotYourRequest,
)
from jitgrant.models.vocabulary import Reason
from jitgrant_testing.agents import AGENT, NS, OTHER, REASON, Agents

RESTART: dict[str, Any] = {
    "policy": "oncall-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "duration": "10m",
    "justification": REASON,
}


def audit_log(agents: Agents) -> AuditLogFiles:
    return AuditLogFiles(agents.env.state_dir / "kube-apiserver-audit.log")


def test_activity_lists_the_restart_and_the_refused_attempt(agents: Agents) -> None:
    env = agents.env
    env.create_deployment("payments", "ledger")
    agent_api = env.client_for_service_account(NS, AGENT)
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        with client.grant(**RESTART) as grant:
            env.restart_deployment("payments", "checkout", client=agent_api)
            with pytest.raises(ApiException) as refused:
                env.restart_deployment("payments", "ledger", client=agent_api)
            assert refused.value.status == 403
            live = client.activity(grant.name, source=audit_log(agents))
        assert live.window.end is None  # read while the grant was live
        ended = client.activity(grant.name, source=audit_log(agents))

    assert ended.request == f"{NS}/{grant.name}" and ended.window.end is not None
    assert ended.identities == (f"system:serviceaccount:{NS}:{AGENT}",)
    assert ended.source.startswith("audit log ")
    [restart] = ended.allowed_by_grant
    assert (restart.verb, restart.resource, restart.namespace, restart.name, restart.code) == (
        "patch",
        "apps/deployments",
        "payments",
        "checkout",
        200,
    )
    assert restart.attribution is Basis.AUTHORIZATION_REASON  # exact: the reason names the binding
    [attempt] = ended.refused
    assert (attempt.verb, attempt.name, attempt.code) == ("patch", "ledger", 403)
    assert attempt.attribution is Basis.IDENTITY_WINDOW
    assert ended.counts[Outcome.THIS_GRANT] == 1 and ended.counts[Outcome.REFUSED] == 1
    # The agent's own client calls in the window (follow, release) were allowed by its standing
    # jitgrant-requester binding: listed, and said to be something else's doing.
    others = [c for c in ended.calls if c.outcome is Outcome.OTHER]
    assert others and all("jitgrant-requester" in c.explanation for c in others)
    # On the wire: the same camelCase document as `jitgrant activity -o json`.
    wire = ended.model_dump(mode="json", by_alias=True)
    assert wire["roleBinding"].startswith("payments/") and wire["calls"][0]["auditID"]


def test_another_agent_cannot_read_the_activity(agents: Agents) -> None:
    with (
        Client.from_kubeconfig(agents.kubeconfig()) as mine,
        Client.from_kubeconfig(agents.kubeconfig(OTHER)) as theirs,
        mine.grant(**RESTART) as grant,
    ):
        with pytest.raises(NotYourRequest) as refused:
            theirs.activity(grant.name, source=audit_log(agents))
        assert refused.value.reason == Reason.NOT_REQUESTER
        assert AGENT not in refused.value.message and "payments" not in refused.value.message


def test_a_request_without_a_grant_and_an_unreadable_log_say_so(agents: Agents, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncClient.from_kubeconfig(agents.kubeconfig()) as client:
            pending = await client.request(**{**RESTART, "policy": "prod-restart"})
            with pytest.raises(ActivityUnavailable) as none:
                await client.activity(pending.metadata.name, source=audit_log(agents))
            assert none.value.reason == Reason.NO_GRANT and "has no grant" in none.value.message
            await client.release(pending.metadata.name, confirm=False)
            async with client.grant(**RESTART) as grant:
                missing = AuditLogFiles(tmp_path / "nowhere.log")
                with pytest.raises(ActivityUnavailable) as unreadable:
                    await client.activity(grant.name, source=missing)
            assert unreadable.value.reason == Reason.ACTIVITY_UNAVAILABLE
            assert "--audit-log-path" in unreadable.value.message

    asyncio.run(scenario())
