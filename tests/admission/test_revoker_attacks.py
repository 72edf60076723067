"""Who revoked, and who may.

identity-and-approvals.md, "Who revoked": the mutating webhook stamps the
caller who sets jitgrant.dev/revoke (sealed, as approvals are), the validating webhook refuses a
forged stamp, and the status and the audit record name the revoker.

And `patch` on AccessRequests (the chart's jitgrant-requester role, given to every agent) no longer
lets one agent end another's grant: only the requester, an approver eligible under the request's
GrantPolicy, or someone the API server lets delete the request may set jitgrant.dev/revoke."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi
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


# --- metadata that decides a request's fate (identity-and-approvals.md) ---------------------------------
# ownerReferences to a missing owner make the garbage collector delete the request, and the finalizer
# then revokes its grant; a foreign finalizer holds a deleted request (and its name). Each is revoking
# by another road, so each follows the same standing rule.

GHOST_OWNER = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "name": "ghost",
    "uid": "0e5d7a4c-0000-4000-8000-00000000dead",
}
STANDING = (
    f"only the requester ({USERNAME_A}), an approver of GrantPolicy oncall-restart, or someone allowed "
    "to delete AccessRequest agents/restart-checkout may change"
)


def patch_metadata(
    env: Environment, name: str, metadata: dict[str, Any], *, client: Any, namespace: str = "agents"
) -> Any:
    return CustomObjectsApi(client).patch_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", namespace, "accessrequests", name, {"metadata": metadata}
    )


def refused_metadata(env: Environment, name: str, metadata: dict[str, Any], *, client: Any) -> str:
    with pytest.raises(ApiException) as raised:
        patch_metadata(env, name, metadata, client=client)
    assert raised.value.status == 403, raised.value.body
    message: str = json.loads(raised.value.body)["message"]
    return message


def test_another_agent_cannot_end_a_grant_through_owner_references(env: Environment) -> None:
    agent_b = env.client_for_service_account("agents", AGENT_B)
    message = refused_metadata(env, "restart-checkout", {"ownerReferences": [GHOST_OWNER]}, client=agent_b)
    assert (
        f"{STANDING} metadata.ownerReferences (the garbage collector deletes the request, and deleting it "
        f"ends its grant, once its owners are gone); {USERNAME_B} is none of these"
    ) in message
    time.sleep(0.5)  # the garbage collector took 0.2 s here before the fix
    stored = env.get_request("agents", "restart-checkout")
    assert "ownerReferences" not in stored["metadata"]
    assert stored["status"]["phase"] == "Active"
    assert len(env.jit_bindings("payments")) == 1


def test_another_agent_cannot_make_a_pending_request_vanish_through_owner_references(
    env: Environment,
) -> None:
    env.apply(
        [
            {
                **POLICY,
                "metadata": {"name": "oncall-approved"},
                "spec": {**POLICY["spec"], "approval": {"required": True, "approvers": {"users": ["alice"]}}},
            }
        ]
    )
    agent_a = env.client_for_service_account("agents", AGENT_A)
    pending = {**REQUEST, "metadata": {"name": "waiting", "namespace": "agents"}}
    env.create_request({**pending, "spec": {**REQUEST["spec"], "policy": "oncall-approved"}}, client=agent_a)
    env.wait_for_phase("agents", "waiting", "Pending")
    agent_b = env.client_for_service_account("agents", AGENT_B)
    message = refused_metadata(env, "waiting", {"ownerReferences": [GHOST_OWNER]}, client=agent_b)
    assert "may change metadata.ownerReferences" in message
    assert f"{USERNAME_B} is none of these" in message
    time.sleep(0.5)
    assert env.get_request("agents", "waiting")["status"]["phase"] == "Pending"


def test_an_approver_of_another_policy_cannot_end_a_grant_through_owner_references(env: Environment) -> None:
    # dave approves under some other policy, with the chart's approver role (patch on every request).
    env.apply(
        [
            {
                **POLICY,
                "metadata": {"name": "other-team"},
                "spec": {**POLICY["spec"], "approval": {"required": True, "approvers": {"users": ["dave"]}}},
            }
        ]
    )
    env.allow_to_approve("agents", user="dave")
    dave = env.client_for_user("dave", groups=("other-team",))
    message = refused_metadata(env, "restart-checkout", {"ownerReferences": [GHOST_OWNER]}, client=dave)
    assert f"{STANDING} metadata.ownerReferences" in message
    assert "dave is none of these" in message
    assert env.get_request("agents", "restart-checkout")["status"]["phase"] == "Active"


def test_a_stranger_cannot_add_or_remove_finalizers_or_touch_deletion_fields(env: Environment) -> None:
    agent_b = env.client_for_service_account("agents", AGENT_B)
    stored = env.get_request("agents", "restart-checkout")
    held = [*stored["metadata"]["finalizers"], "example.com/hold-forever"]
    message = refused_metadata(env, "restart-checkout", {"finalizers": held}, client=agent_b)
    assert f"{STANDING} metadata.finalizers (they decide when a deleted request" in message
    assert f"{USERNAME_B} is none of these" in message
    # Its own finalizer only the operator removes, whoever asks.
    message = refused_metadata(env, "restart-checkout", {"finalizers": []}, client=agent_b)
    assert "only the jitgrant operator removes the finalizer jitgrant.dev/revoke-grant" in message
    # Set only by deleting: the API server ignores or refuses it on update; the webhook refuses what
    # gets through (approvals/revocation.py FATE_FIELDS).
    try:
        patch_metadata(env, "restart-checkout", {"deletionGracePeriodSeconds": 0}, client=agent_b)
    except ApiException as exc:
        assert exc.status in (403, 422), exc.body
    after = env.get_request("agents", "restart-checkout")
    assert after["metadata"]["finalizers"] == stored["metadata"]["finalizers"]
    assert "deletionTimestamp" not in after["metadata"]
    assert "deletionGracePeriodSeconds" not in after["metadata"]
    assert after["status"]["phase"] == "Active"


def test_labels_and_other_annotations_stay_free_for_anyone_with_patch(env: Environment) -> None:
    """Not every metadata edit is revoking: the operator reads no label and no foreign annotation."""
    agent_b = env.client_for_service_account("agents", AGENT_B)
    patch_metadata(
        env,
        "restart-checkout",
        {"labels": {"team": "b"}, "annotations": {"example.com/note": "x"}},
        client=agent_b,
    )
    assert env.get_request("agents", "restart-checkout")["metadata"]["labels"] == {"team": "b"}


def test_the_requester_may_tie_its_request_to_an_owner_and_its_own_deletion_names_it(
    env: Environment,
) -> None:
    agent_a = env.client_for_service_account("agents", AGENT_A)
    patch_metadata(
        env,
        "restart-checkout",
        {
            "finalizers": [
                *env.get_request("agents", "restart-checkout")["metadata"]["finalizers"],
                "example.com/mine",
            ]
        },
        client=agent_a,
    )
    rules = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["delete"]}]
    env.allow("agents", role="delete-own", rules=rules, service_account=AGENT_A)
    CustomObjectsApi(agent_a).delete_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", "agents", "accessrequests", "restart-checkout"
    )
    [record] = revoked_records(env)
    assert record["reason"] == f"the AccessRequest was deleted by {USERNAME_A}"
    wait_until(lambda: env.jit_bindings("payments") == [], timeout=10, what="the grant revoked")
    # The operator gives its finalizer back once the revocation is done (just after the binding went).
    wait_until(
        lambda: (
            env.get_request("agents", "restart-checkout")["metadata"]["finalizers"] == ["example.com/mine"]
        ),
        timeout=10,
        what="the operator's finalizer released",
    )
    # Its own finalizer is the requester's to remove; then the request goes.
    patch_metadata(env, "restart-checkout", {"finalizers": []}, client=agent_a)


def test_an_approver_of_the_policy_may_set_owner_references_and_the_collector_is_recorded(
    env: Environment,
) -> None:
    """Standing allows it; the embedded garbage collector, like upstream's, deletes through admission
    as itself, so the record names it and the owner it followed."""
    alice = env.client_for_user("alice", groups=("sre",))
    patch_metadata(env, "restart-checkout", {"ownerReferences": [GHOST_OWNER]}, client=alice)
    wait_until(lambda: env.jit_bindings("payments") == [], timeout=10, what="the grant revoked")
    [record] = revoked_records(env)
    assert record["reason"] == (
        "the AccessRequest was deleted by the garbage collector "
        "(system:serviceaccount:kube-system:generic-garbage-collector) following its owner ConfigMap "
        f"agents/ghost (uid {GHOST_OWNER['uid']})"
    )
