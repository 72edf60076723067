"""The grant lifecycle, end to end: the operator, the API server and the agent all over HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.grants.ownership import owner_seal
from jitgrant_testing.environment import Environment

from .conftest import jit_bindings, phase_of, request_manifest, wait_for_phase, wait_until


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _audit_types(env: Environment, uid: str) -> list[str]:
    records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
    return [
        r["event"]["type"] for r in records if r.get("kind") == "record" and r["event"]["requestUid"] == uid
    ]


def test_auto_approved_request_becomes_active_then_expires_and_the_binding_goes(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    with pytest.raises(ApiException) as before:
        env.restart_deployment("payments", "checkout", client=agent)
    assert before.value.status == 403

    env.create_request(request_manifest(duration="4s"), client=agent)
    active = wait_for_phase(env, "agents", "restart-checkout", "Active")
    status = active["status"]
    assert _parse(status["expiresAt"]) - _parse(status["activatedAt"]) == timedelta(seconds=4)
    [binding] = jit_bindings(env, "payments")
    assert binding["metadata"]["name"] == status["grant"]["roleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "jit-restart-checkout",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": "agents"}]
    assert binding["metadata"]["labels"]["jitgrant.dev/request-uid"] == active["metadata"]["uid"]
    assert binding["metadata"]["annotations"]["jitgrant.dev/expires-at"] == status["expiresAt"]
    env.restart_deployment("payments", "checkout", client=agent)  # the grant works

    assert [(c["type"], c["status"]) for c in status["conditions"]] == [("Granted", "True")]
    expired = wait_for_phase(env, "agents", "restart-checkout", "Expired", timeout=15)
    assert [(c["type"], c["status"], c["reason"]) for c in expired["status"]["conditions"]] == [
        ("Granted", "False", "Expired")
    ]
    assert _parse(expired["status"]["endedAt"]) - _parse(status["expiresAt"]) < timedelta(seconds=3)
    assert jit_bindings(env, "payments") == []
    with pytest.raises(ApiException) as after:
        env.restart_deployment("payments", "checkout", client=agent)
    assert after.value.status == 403
    # The file sink is fed from the spool by a background worker: wait for delivery.
    types = wait_until(
        lambda: (t := _audit_types(env, active["metadata"]["uid"]))[4:] and t, what="audit records"
    )
    assert types[:5] == ["requested", "approved", "issuing", "granted", "expired"]


def test_denied_request_creates_nothing_and_says_why(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(namespace="orders"), client=agent)
    denied = wait_for_phase(env, "agents", "restart-checkout", "Denied")
    assert "orders" in denied["status"]["message"] and "payments" in denied["status"]["message"]
    assert jit_bindings(env, "orders") == [] and jit_bindings(env, "payments") == []
    events = CoreV1Api(env.admin).list_namespaced_event("agents").items
    wait_until(
        lambda: [
            e
            for e in CoreV1Api(env.admin).list_namespaced_event("agents").items
            if e.reason == "PolicyRefused"
        ],
        what="a PolicyRefused event",
    )
    del events


def test_unknown_requester_is_denied(env: Environment) -> None:
    stranger = env.client_for_service_account("agents", "someone-else")
    env.allow_to_request("agents", service_account="someone-else")
    env.create_request(request_manifest(), client=stranger)
    denied = wait_for_phase(env, "agents", "restart-checkout", "Denied")
    assert "system:serviceaccount:agents:someone-else" in denied["status"]["message"]
    assert jit_bindings(env, "payments") == []


def test_duration_over_the_policy_maximum_is_denied(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="2h"), client=agent)
    denied = wait_for_phase(env, "agents", "restart-checkout", "Denied")
    assert "15m" in denied["status"]["message"]


def test_revoke_annotation_ends_the_grant_early(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="10m"), client=agent)
    wait_for_phase(env, "agents", "restart-checkout", "Active")
    env.annotate_request(
        "agents", "restart-checkout", {"jitgrant.dev/revoke": "incident resolved"}, client=env.admin
    )
    revoked = wait_for_phase(env, "agents", "restart-checkout", "Revoked")
    # The webhook stamps who set the annotation; the status names them (identity-and-approvals.md, "Who
    # revoked").
    assert revoked["status"]["message"] == "revoked by kubernetes-admin: incident resolved"
    assert jit_bindings(env, "payments") == []
    time.sleep(1.5)
    assert phase_of(env, "agents", "restart-checkout") == "Revoked"  # terminal stays terminal


def test_deleting_an_active_request_revokes_it_first(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="10m"), client=agent)
    wait_for_phase(env, "agents", "restart-checkout", "Active")
    assert jit_bindings(env, "payments")
    CustomObjectsApi(env.admin).delete_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", "agents", "accessrequests", "restart-checkout"
    )

    def gone() -> bool:
        try:
            env.get_request("agents", "restart-checkout")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, what="the request to be deleted")
    assert jit_bindings(env, "payments") == []


def test_grant_expires_on_start_up_when_the_operator_was_down_at_expiry(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    # A window long enough that the stop surely ends inside it on a loaded machine (with 3 s the
    # operator sometimes ended the grant itself before stop() returned).
    env.create_request(request_manifest(duration="8s"), client=agent)
    active = wait_for_phase(env, "agents", "restart-checkout", "Active")
    env.operator.stop()
    stopped_at = datetime.now(UTC)
    assert stopped_at < _parse(active["status"]["expiresAt"]), "the stop took longer than the window"
    wait_until(
        lambda: datetime.now(UTC) > _parse(active["status"]["expiresAt"]) + timedelta(seconds=1),
        what="expiry to pass while the operator is down",
    )
    assert jit_bindings(env, "payments"), "nothing else removes the binding while the operator is down"
    started = time.monotonic()
    env.start_operator()
    wait_until(lambda: not jit_bindings(env, "payments"), timeout=10, what="the binding to be removed")
    assert time.monotonic() - started < 10
    wait_for_phase(env, "agents", "restart-checkout", "Expired")


def test_orphaned_binding_the_operator_made_is_swept(env: Environment) -> None:
    """An object sealed by the operator (as if its request vanished while the operator was down)."""
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    seal = owner_seal(
        key=env.receipt_key,
        cluster="in-cluster",
        kind="RoleBinding",
        namespace="payments",
        name="jit-orphan",
        request_uid="gone-uid",
    )
    RbacAuthorizationV1Api(env.admin).create_namespaced_role_binding(
        "payments",
        {
            "metadata": {
                "name": "jit-orphan",
                "labels": {
                    "app.kubernetes.io/managed-by": "jitgrant",
                    "jitgrant.dev/request-uid": "gone-uid",
                },
                "annotations": {
                    "jitgrant.dev/request": "agents/no-such-request",
                    "jitgrant.dev/expires-at": future,
                    "jitgrant.dev/owner-seal": seal,
                },
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "jit-restart-checkout",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": "agents"}],
        },
    )
    # The sweep runs every second; a loaded machine may take a while longer to get to it.
    wait_until(lambda: not jit_bindings(env, "payments"), timeout=30, what="the orphan to be swept")

    def swept_record() -> bool:
        # Written just after the delete: the binding can be gone a moment before the record is.
        if not env.audit_file.exists():
            return False
        records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
        return any(
            r["event"]["type"] == "cleaned-up" and "no longer exists" in (r["event"]["reason"] or "")
            for r in records
            if r.get("kind") == "record"
        )

    wait_until(swept_record, timeout=10, what="the sweep's audit record")


def test_foreign_role_binding_is_never_touched_by_the_sweep(env: Environment) -> None:
    rbac = RbacAuthorizationV1Api(env.admin)
    rbac.create_namespaced_role_binding(
        "payments",
        {
            "metadata": {"name": "team-owned", "labels": {"team": "payments"}},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "jit-restart-checkout",
            },
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    time.sleep(2.5)  # more than two sweep intervals
    assert rbac.read_namespaced_role_binding("team-owned", "payments").metadata.labels == {"team": "payments"}


def test_spec_cannot_change_after_creation(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.allow(
        "agents",
        role="agent-edit",
        rules=[
            {"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch", "update"]}
        ],
        service_account="oncall-agent",
    )
    env.create_request(request_manifest(duration="10m"), client=agent)
    wait_for_phase(env, "agents", "restart-checkout", "Active")
    with pytest.raises(ApiException) as refused:
        CustomObjectsApi(agent).patch_namespaced_custom_object(
            "jitgrant.dev",
            "v1alpha1",
            "agents",
            "accessrequests",
            "restart-checkout",
            {"spec": {"namespace": "orders", "duration": "15m"}},
        )
    assert refused.value.status in (403, 422)
    assert "immutable" in refused.value.body or "spec" in refused.value.body
    assert env.get_request("agents", "restart-checkout")["spec"]["namespace"] == "payments"


def test_agent_cannot_write_its_own_status(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.allow(
        "agents",
        role="agent-edit",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}],
        service_account="oncall-agent",
    )
    env.create_request(request_manifest(namespace="orders"), client=agent)
    wait_for_phase(env, "agents", "restart-checkout", "Denied")
    with pytest.raises(ApiException) as refused:
        CustomObjectsApi(agent).patch_namespaced_custom_object_status(
            "jitgrant.dev",
            "v1alpha1",
            "agents",
            "accessrequests",
            "restart-checkout",
            {"status": {"phase": "Approved"}},
        )
    assert refused.value.status == 403
    # A patch of the main resource cannot reach status either (status subresource semantics).
    CustomObjectsApi(agent).patch_namespaced_custom_object(
        "jitgrant.dev",
        "v1alpha1",
        "agents",
        "accessrequests",
        "restart-checkout",
        {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Approved"}},
    )
    time.sleep(1.5)
    assert phase_of(env, "agents", "restart-checkout") == "Denied"
    assert jit_bindings(env, "orders") == []
