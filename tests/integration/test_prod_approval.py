"""Production approval end to end, and the attacks on it.

Everything goes over HTTP through the embedded API server's authentication, RBAC and the admission
webhooks, with the operator running as its own ServiceAccount; every identity uses its own token.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.engines.admission import build_webhooks
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException

from jitgrant.grants.objects import GrantOwner, grant_object_name
from jitgrant.operator import admission, policy_admission
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until

NS = "agents"
NAME = "restart-checkout-prod"
APPROVALS = "jitgrant.dev/approvals"
APPROVE = "jitgrant.dev/approve"
DENY = "jitgrant.dev/deny"
SHORT_POLICY = "prod-restart-short"
SHORT_TIMEOUT = "6s"


# --- identities and helpers ------------------------------------------------------------------------


def agent_with_patch(env: Environment, account: str = "oncall-agent") -> ApiClient:
    """Agents usually may edit their own requests: exactly what makes self-approval a risk."""
    env.allow(
        NS,
        role="agent-edit",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}],
        service_account=account,
    )
    if account != "oncall-agent":
        env.allow_to_request(NS, service_account=account)
    return env.client_for_service_account(NS, account)


def approvers(env: Environment, *names: str) -> list[ApiClient]:
    """People in the policy's approver group sre-oncall, with patch rights through that group."""
    env.allow_to_approve(NS, group="sre-oncall")
    return [env.client_for_user(name, groups=("sre-oncall",)) for name in names]


def mallory(env: Environment) -> ApiClient:
    """May patch AccessRequests (RBAC), but the policy does not name her as an approver."""
    env.allow_to_approve(NS, user="mallory")
    return env.client_for_user("mallory", groups=("developers",))


def prod_request(*, policy: str = "prod-restart", duration: str = "10m") -> dict[str, Any]:
    return request_manifest(NAME, policy=policy, duration=duration, justification="INC-4712 hotfix restart")


def add_short_timeout_policy(env: Environment) -> None:
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy = copy.deepcopy(policy)
    policy["metadata"]["name"] = SHORT_POLICY
    policy["spec"]["approval"]["pendingTimeout"] = SHORT_TIMEOUT
    env.apply([policy])


def refusal(action: Any) -> str:
    """The API server's message for an action that must be refused by admission (403)."""
    with pytest.raises(ApiException) as refused:
        action()
    assert refused.value.status == 403, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def recorded(obj: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(
        (obj["metadata"].get("annotations") or {}).get(APPROVALS) or "[]"
    )
    return entries


def audit_events(env: Environment, uid: str) -> list[dict[str, Any]]:
    if not env.audit_file.exists():
        return []
    records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
    return [r["event"] for r in records if r.get("kind") == "record" and r["event"]["requestUid"] == uid]


def bypass_webhooks(env: Environment) -> None:
    """What a cluster admin (or a broken install) can do: remove jitgrant's webhook configurations."""
    admission = AdmissionregistrationV1Api(env.admin)
    admission.delete_mutating_webhook_configuration("jitgrant")
    admission.delete_validating_webhook_configuration("jitgrant")


def write_approvals_directly(env: Environment, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return env.annotate_request(
        NS, NAME, {APPROVALS: json.dumps(entries, separators=(",", ":"))}, client=env.admin
    )


def forged_entry(name: str = "alice") -> dict[str, Any]:
    return {
        "approver": name,
        "groups": ["sre-oncall", "system:authenticated"],
        "at": datetime.now(UTC).isoformat(),
        "decision": "approve",
        "reason": "lgtm",
        "receipt": "v1:" + "0" * 64,
    }


# --- the story -------------------------------------------------------------------------------------


def test_only_a_named_approver_can_approve_and_the_grant_is_exact_and_ends(env: Environment) -> None:
    agent = agent_with_patch(env)
    second_identity = agent_with_patch(env, "oncall-agent-canary")
    stranger = mallory(env)
    [alice] = approvers(env, "alice")

    env.create_request(prod_request(duration="4s"), client=agent)
    pending = wait_for_phase(env, NS, NAME, "Pending")
    assert pending["status"]["reason"] == "AwaitingApproval"
    assert "1 approval(s) under policy prod-restart" in pending["status"]["message"]
    assert jit_bindings(env, "payments") == []
    uid = pending["metadata"]["uid"]

    def approve_as(client: ApiClient) -> Any:
        return lambda: env.annotate_request(NS, NAME, {APPROVE: "looks fine"}, client=client)

    assert (
        "system:serviceaccount:agents:oncall-agent is the requester and cannot approve or deny their own "
        "request" in refusal(approve_as(agent))
    )
    assert "system:serviceaccount:agents:oncall-agent-canary is a ServiceAccount" in refusal(
        approve_as(second_identity)
    )
    assert (
        "mallory is not an approver for policy prod-restart (approvers: users none; groups sre-oncall)"
        in (refusal(approve_as(stranger)))
    )
    after_refusals = env.get_request(NS, NAME)
    assert after_refusals["status"]["phase"] == "Pending"
    assert recorded(after_refusals) == []
    assert APPROVE not in (after_refusals["metadata"].get("annotations") or {})

    approved = env.annotate_request(NS, NAME, {APPROVE: "INC-4712 checked"}, client=alice)
    [entry] = recorded(approved)
    assert APPROVE not in approved["metadata"]["annotations"]  # the webhook turned it into the entry
    assert (entry["approver"], entry["decision"], entry["reason"]) == ("alice", "approve", "INC-4712 checked")
    assert "sre-oncall" in entry["groups"] and entry["receipt"].startswith("v1:")

    active = wait_for_phase(env, NS, NAME, "Active")
    assert [(a["approver"], a["receipt"]) for a in active["status"]["approvals"]] == [
        ("alice", entry["receipt"])
    ]
    [binding] = jit_bindings(env, "payments")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": "agents"}]
    env.restart_deployment("payments", "checkout", client=agent)
    with pytest.raises(ApiException) as ledger:
        env.restart_deployment("payments", "ledger", client=agent)
    assert ledger.value.status == 403

    wait_for_phase(env, NS, NAME, "Expired", timeout=15)
    assert jit_bindings(env, "payments") == []
    with pytest.raises(ApiException) as after:
        env.restart_deployment("payments", "checkout", client=agent)
    assert after.value.status == 403

    events = wait_until(
        lambda: (e := audit_events(env, uid))[5:] and e, what="six audit records for the request"
    )
    types = [e["type"] for e in events][:6]
    assert types == ["requested", "pending", "approved", "issuing", "granted", "expired"]
    approved_event = events[2]
    assert [(a["approver"], a["receipt"]) for a in approved_event["approvers"]] == [
        ("alice", entry["receipt"])
    ]
    assert approved_event["reason"] == "approved by alice"


def test_the_webhook_configurations_are_the_ones_kopf_registers(env: Environment) -> None:
    """The Environment the story runs in must carry all three webhooks, as the chart does."""
    registry = kopf.OperatorRegistry()
    admission.register(registry)
    policy_admission.register(registry)  # the GrantPolicy webhook (validate-policy)
    expected = {
        hook["name"]: hook
        for hook in build_webhooks(
            registry._webhooks.get_all_handlers(),
            resources=[
                references.Resource("jitgrant.dev", "v1alpha1", "accessrequests"),
                references.Resource("jitgrant.dev", "v1alpha1", "grantpolicies"),
            ],
            name_suffix="jitgrant.dev",
            client_config={"url": "x"},
        )
    }
    api = AdmissionregistrationV1Api(env.admin)
    installed = {
        hook.name: hook
        for configuration in (
            api.read_mutating_webhook_configuration("jitgrant"),
            api.read_validating_webhook_configuration("jitgrant"),
        )
        for hook in configuration.webhooks
    }
    assert set(installed) == set(expected)
    for name, hook in installed.items():
        [rule] = hook.rules
        [kopf_rule] = expected[name]["rules"]
        assert (rule.operations, rule.resources) == (kopf_rule["operations"], kopf_rule["resources"]), name
        assert hook.side_effects == expected[name]["sideEffects"], name
        assert hook.failure_policy == "Fail"
        assert hook.client_config.url.endswith(expected[name]["clientConfig"]["url"][1:])


def test_status_cannot_be_written_by_anyone_but_the_operator_even_with_rbac(env: Environment) -> None:
    """RBAC mistakes happen: guard-status is the second line behind them."""
    agent = env.client_for_service_account(NS, "oncall-agent")
    stranger = mallory(env)
    env.allow(
        NS,
        role="status-writer",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests/status"], "verbs": ["patch"]}],
        user="mallory",
    )
    env.create_request(prod_request(), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")
    message = refusal(
        lambda: CustomObjectsApi(stranger).patch_namespaced_custom_object_status(
            "jitgrant.dev",
            "v1alpha1",
            NS,
            "accessrequests",
            NAME,
            {"status": {"phase": "Approved", "approvals": [forged_entry()]}},
        )
    )
    assert 'admission webhook "guard-status.jitgrant.dev" denied the request' in message
    assert "status of an AccessRequest is written only by the jitgrant operator" in message
    assert env.get_request(NS, NAME)["status"]["phase"] == "Pending"


# --- decisions other than approval -----------------------------------------------------------------


def test_a_deny_by_an_approver_ends_the_request_and_says_who_and_why(env: Environment) -> None:
    agent = env.client_for_service_account(NS, "oncall-agent")
    alice, bob = approvers(env, "alice", "bob")
    env.create_request(prod_request(), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")

    env.annotate_request(NS, NAME, {DENY: "not during the freeze"}, client=alice)
    denied = wait_for_phase(env, NS, NAME, "Denied")
    assert denied["status"]["reason"] == "DeniedByApprover"
    assert denied["status"]["message"] == "denied by alice: not during the freeze"
    assert jit_bindings(env, "payments") == []
    # A deny is final: another approver cannot undo it.
    message = refusal(lambda: env.annotate_request(NS, NAME, {APPROVE: "overrule"}, client=bob))
    assert "request is Denied; decisions are taken only while it is Pending" in message


def test_nobody_deciding_within_the_pending_timeout_times_the_request_out(env: Environment) -> None:
    add_short_timeout_policy(env)
    agent = env.client_for_service_account(NS, "oncall-agent")
    [alice] = approvers(env, "alice")
    created = env.create_request(prod_request(policy=SHORT_POLICY), client=agent)
    timed_out = wait_for_phase(env, NS, NAME, "TimedOut", timeout=20)
    assert timed_out["status"]["reason"] == "PendingTimeout"
    assert f"pendingTimeout of {SHORT_TIMEOUT}" in timed_out["status"]["message"]
    assert jit_bindings(env, "payments") == []
    message = refusal(lambda: env.annotate_request(NS, NAME, {APPROVE: "too late"}, client=alice))
    assert "request is TimedOut" in message
    wait_until(
        lambda: (
            [e["type"] for e in audit_events(env, created["metadata"]["uid"])]
            == ["requested", "pending", "timed-out"]
        ),
        what="requested, pending, timed-out in the audit trail",
    )


# --- forged and replayed approvals ----------------------------------------------------------------


def test_a_hand_written_approval_is_refused_and_without_the_webhook_it_counts_for_nothing(
    env: Environment,
) -> None:
    add_short_timeout_policy(env)
    agent = env.client_for_service_account(NS, "oncall-agent")
    stranger, [alice] = mallory(env), approvers(env, "alice")
    created = env.create_request(prod_request(policy=SHORT_POLICY), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")

    forged = json.dumps([forged_entry()])
    by_mallory = refusal(lambda: env.annotate_request(NS, NAME, {APPROVALS: forged}, client=stranger))
    assert "was not recorded by the jitgrant webhook for you (mallory)" in by_mallory
    # Even an approver cannot write an entry in her own name by hand: the receipt is the webhook's.
    by_alice = refusal(lambda: env.annotate_request(NS, NAME, {APPROVALS: forged}, client=alice))
    assert "was not recorded by the jitgrant webhook for you (alice) on this request" in by_alice
    assert recorded(env.get_request(NS, NAME)) == []

    bypass_webhooks(env)
    written = write_approvals_directly(env, [forged_entry(), forged_entry("bob")])
    assert written["status"]["phase"] == "Pending"  # the forgery is in place while a decision is due
    assert len(recorded(written)) == 2

    ended = wait_for_phase(env, NS, NAME, "TimedOut", timeout=20)
    assert not ended["status"].get("approvals")
    assert jit_bindings(env, "payments") == []
    types = [e["type"] for e in audit_events(env, created["metadata"]["uid"])]
    assert "approved" not in types and "granted" not in types


def test_a_request_recreated_under_the_same_name_starts_from_zero(env: Environment) -> None:
    add_short_timeout_policy(env)
    agent = env.client_for_service_account(NS, "oncall-agent")
    [alice] = approvers(env, "alice")
    first = env.create_request(prod_request(policy=SHORT_POLICY), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")
    [old_entry] = recorded(env.annotate_request(NS, NAME, {APPROVE: "INC-4712"}, client=alice))
    wait_for_phase(env, NS, NAME, "Active")
    CustomObjectsApi(env.admin).delete_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests", NAME
    )

    def gone() -> bool:
        try:
            env.get_request(NS, NAME)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_until(gone, what="the first request to be revoked and deleted")
    assert jit_bindings(env, "payments") == []

    second = env.create_request(prod_request(policy=SHORT_POLICY), client=agent)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    pending = wait_for_phase(env, NS, NAME, "Pending")
    assert recorded(pending) == [] and not pending["status"].get("approvals")

    # Alice's genuine receipt from the first request, copied over: bound to the old uid.
    copied = json.dumps([old_entry])
    message = refusal(lambda: env.annotate_request(NS, NAME, {APPROVALS: copied}, client=alice))
    assert "was not recorded by the jitgrant webhook for you (alice) on this request" in message

    bypass_webhooks(env)
    written = write_approvals_directly(env, [old_entry])
    assert written["status"]["phase"] == "Pending"
    ended = wait_for_phase(env, NS, NAME, "TimedOut", timeout=20)
    assert not ended["status"].get("approvals")
    assert jit_bindings(env, "payments") == []


# --- never-adopt -------------------------------------------------------------------------------------


def test_a_foreign_role_binding_under_the_grant_name_fails_the_request_and_is_left_alone(
    env: Environment,
) -> None:
    agent = env.client_for_service_account(NS, "oncall-agent")
    [alice] = approvers(env, "alice")
    created = env.create_request(prod_request(), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")
    name = grant_object_name(GrantOwner(uid=created["metadata"]["uid"], namespace=NS, name=NAME))

    rbac = RbacAuthorizationV1Api(env.admin)
    subjects = [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]
    foreign = rbac.create_namespaced_role_binding(
        "payments",
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": subjects,
        },
    )

    env.annotate_request(NS, NAME, {APPROVE: "INC-4712"}, client=alice)
    failed = wait_for_phase(env, NS, NAME, "Failed")
    assert failed["status"]["reason"] == "NameCollision"
    assert (
        f"RoleBinding payments/{name} already exists and was not created by jitgrant"
        in (failed["status"]["message"])
    )
    after = env.admin.sanitize_for_serialization(rbac.read_namespaced_role_binding(name, "payments"))
    assert after["metadata"]["uid"] == foreign.metadata.uid
    assert after["metadata"]["resourceVersion"] == foreign.metadata.resource_version
    assert after["subjects"] == subjects
    assert after["roleRef"]["name"] == "view"
    assert not after["metadata"].get("labels")
    with pytest.raises(ApiException) as refused:
        env.restart_deployment("payments", "checkout", client=agent)
    assert refused.value.status == 403


def test_two_approvals_are_recorded_one_by_one_and_grant_only_at_quorum(env: Environment) -> None:
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy = copy.deepcopy(policy)
    policy["metadata"]["name"] = "prod-restart-two"
    policy["spec"]["approval"]["minApprovals"] = 2
    env.apply([policy])
    alice, bob = approvers(env, "alice", "bob")
    agent = env.client_for_service_account(NS, "oncall-agent")
    created = env.create_request(prod_request(policy="prod-restart-two"), client=agent)
    wait_for_phase(env, NS, NAME, "Pending")

    env.annotate_request(NS, NAME, {APPROVE: "first look"}, client=alice)
    one = wait_until(
        lambda: (o := env.get_request(NS, NAME))["status"].get("approvals") and o,
        what="the first approval in status",
    )
    assert one["status"]["phase"] == "Pending"
    assert [a["approver"] for a in one["status"]["approvals"]] == ["alice"]
    assert "1 of 2" in one["status"]["message"]
    assert jit_bindings(env, "payments") == []

    def recorded() -> list[dict[str, Any]]:
        lines = env.audit_file.read_text().splitlines() if env.audit_file.exists() else []
        events = [json.loads(line)["event"] for line in lines if line.strip()]
        return [
            e
            for e in events
            if e["requestUid"] == created["metadata"]["uid"] and e["type"] == "approval-recorded"
        ]

    [first] = wait_until(recorded, what="an approval-recorded audit record")
    assert first["approvers"][0]["approver"] == "alice" and first["approvers"][0]["receipt"]

    env.annotate_request(NS, NAME, {APPROVE: "second look"}, client=bob)
    active = wait_for_phase(env, NS, NAME, "Active")
    assert sorted(a["approver"] for a in active["status"]["approvals"]) == ["alice", "bob"]
    assert jit_bindings(env, "payments")
