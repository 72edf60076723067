"""Who revoked, and who may.

Issue 11 §8: the `revoked` audit record did not say who revoked. Now the mutating webhook stamps the
caller who sets jitgrant.dev/revoke (sealed, as approvals are), the validating webhook refuses a
forged stamp, and the status and the audit record name the revoker.

And `patch` on AccessRequests (the chart's jitgrant-requester role, given to every agent) no longer
lets one agent end another's grant: only the requester, an approver eligible under the request's
GrantPolicy, or someone the API server lets delete the request may set jitgrant.dev/revoke."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.agents import bind_agent
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, wait_until
from jitgrant_testing.playground import chart_user_cluster_roles

AGENT_A, AGENT_B = "agent-a", "agent-b"
USERNAME_A = f"system:serviceaccount:agents:{AGENT_A}"
USERNAME_B = f"system:serviceaccount:agents:{AGENT_B}"

# Auto-approved, with approvers named: on such a policy they are who may revoke besides the requester.
POLICY: dict[str, Any] = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "GrantPolicy",
    "metadata": {"name": "oncall-restart"},
    "spec": {
        "requesters": {
            "serviceAccounts": [
                {"namespace": "agents", "name": AGENT_A},
                {"namespace": "agents", "name": AGENT_B},
            ]
        },
        "target": {"type": "InCluster"},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
        "approval": {"required": False, "approvers": {"users": ["alice", "mallory"], "groups": ["sre"]}},
    },
}

REQUEST: dict[str, Any] = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "AccessRequest",
    "metadata": {"name": "restart-checkout", "namespace": "agents"},
    "spec": {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "5m",
        "justification": "INC-1 stuck pods",
    },
}


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply([POLICY])
        environment.create_deployment("payments", "checkout")
        # Both agents get what the chart gives agents: jitgrant-requester (with patch) in their namespace.
        environment.apply(chart_user_cluster_roles())
        bind_agent(environment, AGENT_A)
        bind_agent(environment, AGENT_B)
        environment.allow_to_approve("agents", user="alice")
        environment.allow_to_approve("agents", user="mallory")
        agent = environment.client_for_service_account("agents", AGENT_A)
        environment.create_request(REQUEST, client=agent)
        environment.wait_for_phase("agents", "restart-checkout", "Active")
        yield environment


def revoked_records(env: Environment) -> list[dict[str, Any]]:
    """The `revoked` records, once written (after the status: a record never holds a revocation up)."""

    def written() -> list[dict[str, Any]] | None:
        lines = env.audit_file.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        found = [r["event"] for r in records if r.get("kind") == "record" and r["event"]["type"] == "revoked"]
        return found or None

    return wait_until(written, timeout=10, what="the revoked audit record")


def test_the_revoked_record_and_status_name_who_revoked(env: Environment) -> None:
    alice = env.client_for_user("alice", groups=("sre",))
    env.annotate_request(
        "agents", "restart-checkout", {"jitgrant.dev/revoke": "INC-9 agent looping"}, client=alice
    )
    revoked = env.wait_for_phase("agents", "restart-checkout", "Revoked")
    assert revoked["status"]["message"] == "revoked by alice: INC-9 agent looping"
    [record] = revoked_records(env)
    assert record["reason"] == "revoked by alice: INC-9 agent looping"
    assert env.jit_bindings("payments") == []


def test_a_forged_stamp_naming_someone_else_is_refused(env: Environment) -> None:
    mallory = env.client_for_user("mallory", groups=("devs",))
    forged = json.dumps({"username": "alice", "groups": ["sre"], "reason": "x", "seal": "v1:00"})
    with pytest.raises(ApiException) as raised:
        env.annotate_request(
            "agents", "restart-checkout", {"jitgrant.dev/revoked-by": forged}, client=mallory
        )
    assert "annotation jitgrant.dev/revoked-by is written by the jitgrant webhook" in str(raised.value.body)
    assert env.get_request("agents", "restart-checkout")["status"]["phase"] == "Active"


def test_revoking_with_a_forged_stamp_records_the_real_caller(env: Environment) -> None:
    mallory = env.client_for_user("mallory", groups=("devs",))
    forged = json.dumps({"username": "alice", "groups": ["sre"], "reason": "x", "seal": "v1:00"})
    env.annotate_request(
        "agents",
        "restart-checkout",
        {"jitgrant.dev/revoke": "done", "jitgrant.dev/revoked-by": forged},
        client=mallory,
    )
    revoked = env.wait_for_phase("agents", "restart-checkout", "Revoked")
    assert revoked["status"]["message"] == "revoked by mallory: done"
    assert [record["reason"] for record in revoked_records(env)] == ["revoked by mallory: done"]


# --- who may revoke ----------------------------------------------------------------------------------


def test_another_agent_with_patch_cannot_revoke_an_agents_grant(env: Environment) -> None:
    agent_b = env.client_for_service_account("agents", AGENT_B)
    with pytest.raises(ApiException) as raised:
        env.annotate_request(
            "agents", "restart-checkout", {"jitgrant.dev/revoke": "mine now"}, client=agent_b
        )
    assert raised.value.status == 403
    assert (
        f"only the requester ({USERNAME_A}), an approver of GrantPolicy oncall-restart, or someone allowed "
        "to delete AccessRequest agents/restart-checkout may set, change or remove jitgrant.dev/revoke; "
        f"{USERNAME_B} is none of these"
    ) in str(raised.value.body)
    stored = env.get_request("agents", "restart-checkout")
    assert stored["status"]["phase"] == "Active"
    assert "jitgrant.dev/revoke" not in stored["metadata"]["annotations"]
    assert len(env.jit_bindings("payments")) == 1


def test_a_revocation_someone_else_set_cannot_be_changed_or_removed_by_another_agent(
    env: Environment,
) -> None:
    alice = env.client_for_user("alice")
    # B races the operator: whatever the outcome of the revocation, B may not touch alice's annotation.
    env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": "INC-9"}, client=alice)
    agent_b = env.client_for_service_account("agents", AGENT_B)
    for value in ("rewritten by b", None):
        with pytest.raises(ApiException) as raised:
            env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": value}, client=agent_b)
        assert f"{USERNAME_B} is none of these" in str(raised.value.body)
    assert env.wait_for_phase("agents", "restart-checkout", "Revoked")["status"]["message"] == (
        "revoked by alice: INC-9"
    )


def test_the_requester_may_revoke_its_own_grant(env: Environment) -> None:
    agent_a = env.client_for_service_account("agents", AGENT_A)
    env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": "done early"}, client=agent_a)
    revoked = env.wait_for_phase("agents", "restart-checkout", "Revoked")
    assert revoked["status"]["message"] == f"revoked by {USERNAME_A}: done early"
    assert env.jit_bindings("payments") == []


def test_an_approver_through_the_policys_group_may_revoke(env: Environment) -> None:
    bob = env.client_for_user("bob", groups=("sre",))
    env.allow_to_approve("agents", user="bob")
    env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": "INC-9"}, client=bob)
    assert env.wait_for_phase("agents", "restart-checkout", "Revoked")["status"]["message"] == (
        "revoked by bob: INC-9"
    )


def test_who_may_delete_the_request_may_revoke_it_and_patch_alone_may_not(env: Environment) -> None:
    rules = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["get", "patch"]}]
    env.allow("agents", role="patch-requests", rules=rules, user="carol")
    carol = env.client_for_user("carol", groups=("devs",))
    with pytest.raises(ApiException) as raised:
        env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": "x"}, client=carol)
    assert "carol is none of these" in str(raised.value.body)
    assert env.get_request("agents", "restart-checkout")["status"]["phase"] == "Active"

    rules = [
        {"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["get", "patch", "delete"]}
    ]
    env.allow("agents", role="break-glass", rules=rules, user="platform-admin")
    admin = env.client_for_user("platform-admin", groups=("platform",))
    env.annotate_request("agents", "restart-checkout", {"jitgrant.dev/revoke": "break glass"}, client=admin)
    assert env.wait_for_phase("agents", "restart-checkout", "Revoked")["status"]["message"] == (
        "revoked by platform-admin: break glass"
    )
