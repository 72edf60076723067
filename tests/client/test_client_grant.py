"""jitgrant.client against the real operator on the embedded cluster: grant, wait, release, check."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.client import AccessDenied, Client, NotYourRequest, Progress
from jitgrant_testing.agents import AGENT, NS, OTHER, REASON, Agents, bind_agent
from jitgrant_testing.environment import wait_until

RESTART = {
    "policy": "oncall-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "duration": "10m",
    "justification": REASON,
}


def test_grant_is_active_inside_the_block_and_released_on_exit(agents: Agents) -> None:
    env = agents.env
    agent_api = env.client_for_service_account(NS, AGENT)
    with Client.from_kubeconfig(agents.kubeconfig()) as client, client.grant(**RESTART) as grant:
        assert grant.request.status.phase is not None and grant.request.status.phase.value == "Active"
        assert grant.kubeconfig is None  # the grant binds the agent's own ServiceAccount
        env.restart_deployment("payments", "checkout", client=agent_api)  # the access works
        name = grant.name
    ended = env.get_request(NS, name)
    assert ended["status"]["phase"] == "Revoked" and ended["status"]["reason"] == "Released"
    assert ended["status"]["message"].startswith(f"Released by requester system:serviceaccount:{NS}:{AGENT}")
    assert env.jit_bindings("payments") == []
    with pytest.raises(ApiException) as refused:
        env.restart_deployment("payments", "checkout", client=agent_api)
    assert refused.value.status == 403
    # Recorded as Released (not as an approver's revoke) in the Event and the audit trail too.
    wait_until(
        lambda: [e for e in CoreV1Api(env.admin).list_namespaced_event(NS).items if e.reason == "Released"],
        what="a Released event",
    )

    def released_record() -> list[dict[str, object]]:
        lines = env.audit_file.read_text().splitlines()
        events = [json.loads(line).get("event") or {} for line in lines if line.strip()]
        return [e for e in events if e.get("type") == "revoked" and e.get("requestName") == name]

    record = wait_until(released_record, what="the audit record of the release")[0]
    assert str(record["reason"]).startswith(f"Released by requester system:serviceaccount:{NS}:{AGENT}")


def test_grant_is_released_when_the_block_raises(agents: Agents) -> None:
    env = agents.env
    with (
        Client.from_kubeconfig(agents.kubeconfig()) as client,
        pytest.raises(RuntimeError, match="task failed"),
        client.grant(**RESTART) as grant,
    ):
        name = grant.name
        raise RuntimeError("task failed")
    assert env.get_request(NS, name)["status"]["reason"] == "Released"
    assert env.jit_bindings("payments") == []


def test_wait_reports_each_approval_and_sees_it_within_a_second(agents: Agents) -> None:
    env = agents.env
    alice = env.client_for_user("alice", groups=("sre-oncall",))
    seen: list[Progress] = []
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        filed = client.request(**{**RESTART, "policy": "prod-restart"})
        approved_at: list[float] = []

        def approve() -> None:
            wait_until(lambda: any(p.phase == "Pending" for p in seen), what="pending")
            time.sleep(0.3)
            approved_at.append(time.monotonic())
            env.annotate_request(NS, filed.metadata.name, {"jitgrant.dev/approve": "ok"}, client=alice)

        seen_at: dict[str, float] = {}

        def record(progress: Progress) -> None:
            seen.append(progress)
            seen_at.setdefault(progress.phase or "", time.monotonic())

        thread = threading.Thread(target=approve)
        thread.start()
        calls_before = client.api_calls
        grant = client.wait(filed.metadata.name, timeout="30s", on_progress=record)
        thread.join()
        calls = client.api_calls - calls_before
        client.release(grant.name)
    lines = [p.describe() for p in seen]
    assert "pending approval: 1 more approval(s) needed (0 of 1)" in lines
    assert seen[-1].phase == "Active" and seen[-1].expires_at is not None
    assert seen_at["Approved"] - approved_at[0] < 1.0, (seen_at, approved_at)  # the issue: within a second
    assert calls <= 4, calls  # one read, one policy read, one watch: no polling


def test_check_answers_from_the_operator_without_filing_anything(agents: Agents) -> None:
    env = agents.env
    audit_before = env.audit_file.read_text() if env.audit_file.exists() else ""
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        allowed = client.check(**RESTART)
        pending = client.check(**{**RESTART, "policy": "prod-restart"})
        too_long = client.check(**{**RESTART, "duration": "2h"})
        wrong_namespace = client.check(**{**RESTART, "namespace": "orders"})
    assert (allowed.outcome, allowed.reason, allowed.duration) == ("allowed", "AutoApproved", "10m")
    assert pending.outcome == "pending-approval" and pending.reason == "AwaitingApproval"
    assert pending.approvals_needed == 1 and "groups sre-oncall" in (pending.approvers or "")
    assert too_long.outcome == "denied" and too_long.reason == "PolicyRefused"
    assert "maxDuration 15m" in too_long.message
    assert "namespace 'orders' is not in policy oncall-restart (allowed: payments)" in wrong_namespace.message
    assert env.jit_bindings("payments") == []
    stored = CustomObjectsApi(env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )
    assert stored["items"] == []
    assert (env.audit_file.read_text() if env.audit_file.exists() else "") == audit_before


def test_another_agent_can_neither_see_wait_on_nor_release_a_request(agents: Agents) -> None:
    env = agents.env
    with (
        Client.from_kubeconfig(agents.kubeconfig()) as mine,
        Client.from_kubeconfig(agents.kubeconfig(OTHER)) as theirs,
    ):
        filed = mine.request(**{**RESTART, "policy": "prod-restart"})
        name = filed.metadata.name
        for attempt in (
            lambda: theirs.status(name),
            lambda: theirs.wait(name, timeout="5s"),
            lambda: theirs.release(name),
        ):
            with pytest.raises(NotYourRequest) as refused:
                attempt()
            assert refused.value.reason == "NotRequester"
        assert [r.metadata.name for r in theirs.my_requests()] == []
        assert [r.metadata.name for r in mine.my_requests()] == [name]
    # Past the client, straight at the API: the webhook refuses the other agent's release.
    other_api = env.client_for_service_account(NS, OTHER)
    with pytest.raises(ApiException) as refused_api:
        env.annotate_request(NS, name, {"jitgrant.dev/release": "not mine"}, client=other_api)
    assert refused_api.value.status == 403
    assert f"only the requester (system:serviceaccount:{NS}:{AGENT}) may release" in refused_api.value.body
    assert "jitgrant.dev/release" not in (env.get_request(NS, name)["metadata"].get("annotations") or {})


def test_release_cannot_be_taken_back_and_ends_a_pending_request(agents: Agents) -> None:
    env = agents.env
    agent_api = env.client_for_service_account(NS, AGENT)
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        filed = client.request(**{**RESTART, "policy": "prod-restart"})
        name = filed.metadata.name
        ended = client.release(name, reason="not needed any more")
    assert ended.status.phase is not None and ended.status.phase.value == "Revoked"
    assert ended.status.reason == "Released" and "not needed any more" in (ended.status.message or "")
    with pytest.raises(ApiException) as refused:
        env.annotate_request(NS, name, {"jitgrant.dev/release": None}, client=agent_api)
    assert "set once and cannot be changed or removed" in refused.value.body


def test_denied_wait_raises_with_the_reason(agents: Agents) -> None:
    env = agents.env
    alice = env.client_for_user("alice", groups=("sre-oncall",))
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        filed = client.request(**{**RESTART, "policy": "prod-restart"})
        env.wait_for_phase(NS, filed.metadata.name, "Pending")
        env.annotate_request(NS, filed.metadata.name, {"jitgrant.dev/deny": "use the runbook"}, client=alice)
        with pytest.raises(AccessDenied) as denied:
            client.wait(filed.metadata.name, timeout="20s")
    assert denied.value.reason == "DeniedByApprover" and "use the runbook" in denied.value.message


def test_grantable_lists_the_policies_that_name_the_agent(agents: Agents) -> None:
    env = agents.env
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        found = {g.policy: g for g in client.grantable()}
    assert set(found) == {"oncall-restart", "prod-restart"}
    prod = found["prod-restart"]
    assert prod.approval.required and prod.approval.approver_groups == ("sre-oncall",)
    assert prod.cluster_roles == ("jit-restart-checkout",) and prod.namespaces == ("payments",)
    assert found["oncall-restart"].justification_pattern == "^(INC|CHG)-[0-9]+"
    # An identity no policy names sees nothing (with the same read access to GrantPolicies).
    bind_agent(env, "stranger")
    path = agents.kubeconfig("stranger")
    with Client.from_kubeconfig(path) as stranger:
        assert stranger.grantable() == []
