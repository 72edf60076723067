"""Issue 20 §2 on the real kube-apiserver: metadata that decides an AccessRequest's fate follows the
standing rule of revoking, and a deletion's `revoked` record names who deleted it.

Garbage collection is real here (kube-controller-manager runs with --use-service-account-credentials,
so the collector is system:serviceaccount:kube-system:generic-garbage-collector): before the fix, an
ownerReference to a missing owner set by any agent with `patch` got another agent's request deleted
within seconds and its grant revoked, with a record naming nobody.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.models.vocabulary import DELETED_BY_ANNOTATION, GARBAGE_COLLECTOR_USERNAME
from jitgrant_testing.environment import wait_until
from jitgrant_testing.realenv import RealEnvironment

NS = "agents"
REQUESTER = "system:serviceaccount:agents:oncall-agent"
INTRUDER = "system:serviceaccount:agents:intruder"
GHOST = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "name": "ghost",
    "uid": "0e5d7a4c-0000-4000-8000-00000000dead",
}
PATCH = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["get", "patch"]}]
# How long the real garbage collector took to delete a request whose owner was missing (7 s measured).
GC_WINDOW = 12.0


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def policy(name: str, *, approvers: list[str], required: bool) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
            "approval": {"required": required, "approvers": {"users": approvers}},
        },
    }


def request(name: str, policy_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "policy": policy_name,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "10m",
            "justification": "INC-20 metadata",
        },
    }


def patcher(client: ApiClient, name: str, metadata: dict[str, Any]) -> Callable[[], Any]:
    return lambda: CustomObjectsApi(client).patch_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests", name, {"metadata": metadata}
    )


def webhook_refusal(call: Callable[[], Any]) -> str:
    """The webhook's message, once RBAC for the caller has arrived (a real server's informers lag)."""
    answers: list[str] = []

    def refused_by_webhook() -> bool:
        try:
            call()
        except ApiException as exc:
            answers.append(f"{exc.status} {exc.body}")
            return exc.status == 403 and "jitgrant" in str(exc.body)
        answers.append("allowed")
        return True

    wait_until(refused_by_webhook, timeout=20, what="the webhook's refusal")
    assert answers[-1] != "allowed", "the change was allowed"
    message: str = json.loads(answers[-1].split(" ", 1)[1])["message"]
    return message


def revoked_reason(env: RealEnvironment, uid: str) -> str:
    def found() -> str | None:
        if not env.audit_file.exists():
            return None
        records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
        reasons = [
            r["event"]["reason"]
            for r in records
            if r.get("kind") == "record"
            and r["event"]["requestUid"] == uid
            and r["event"]["type"] == "revoked"
        ]
        return reasons[-1] if reasons else None

    reason: str = wait_until(found, timeout=30, what="the revoked record")
    return reason


def grant_bindings(env: RealEnvironment, uid: str) -> list[dict[str, Any]]:
    return [
        b
        for b in env.jit_bindings("payments")
        if b["metadata"]["labels"].get("jitgrant.dev/request-uid") == uid
    ]


@pytest.fixture(scope="module")
def people(real_env: RealEnvironment) -> dict[str, ApiClient]:
    """The requester, another agent with `patch` (what the chart's requester role gives every agent),
    and `mallory`, an approver with `patch` but under another policy."""
    real_env.allow(
        NS,
        role="agent-patch",
        rules=[
            {"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch", "delete"]}
        ],
        service_account="oncall-agent",
    )
    real_env.allow(NS, role="intruder-patch", rules=PATCH, service_account="intruder")
    real_env.allow(NS, role="mallory-patch", rules=PATCH, user="mallory")
    real_env.apply([policy("md-standing", approvers=["approver"], required=False)])
    real_env.apply([policy("md-pending", approvers=["approver"], required=True)])
    real_env.apply([policy("md-other-team", approvers=["mallory"], required=True)])
    return {
        "agent": real_env.client_for_service_account(NS, "oncall-agent"),
        "intruder": real_env.client_for_service_account(NS, "intruder"),
        "mallory": real_env.client_for_user("mallory"),
    }


def test_no_one_without_standing_ends_a_grant_through_owner_references_or_finalizers(
    real_env: RealEnvironment, people: dict[str, ApiClient]
) -> None:
    name = unique("md-victim")
    real_env.create_request(request(name, "md-standing"), client=people["agent"])
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    uid = active["metadata"]["uid"]
    where = f"AccessRequest {NS}/{name}"

    message = webhook_refusal(patcher(people["intruder"], name, {"ownerReferences": [GHOST]}))
    assert (
        f"only the requester ({REQUESTER}), an approver of GrantPolicy md-standing, or someone allowed to "
        f"delete {where} may change metadata.ownerReferences"
    ) in message
    assert f"{INTRUDER} is none of these" in message

    # An approver, but of another policy: no standing over this request.
    message = webhook_refusal(patcher(people["mallory"], name, {"ownerReferences": [GHOST]}))
    assert "may change metadata.ownerReferences" in message
    assert "mallory is none of these" in message

    held = [*active["metadata"]["finalizers"], "example.com/hold-forever"]
    message = webhook_refusal(patcher(people["intruder"], name, {"finalizers": held}))
    assert "may change metadata.finalizers" in message
    assert f"{INTRUDER} is none of these" in message

    time.sleep(GC_WINDOW)  # long enough for the real garbage collector, had anything got through
    stored = real_env.get_request(NS, name)
    assert "ownerReferences" not in stored["metadata"]
    assert stored["metadata"]["finalizers"] == active["metadata"]["finalizers"]
    assert stored["status"]["phase"] == "Active"
    assert len(grant_bindings(real_env, uid)) == 1


def test_a_pending_request_cannot_be_made_to_vanish(
    real_env: RealEnvironment, people: dict[str, ApiClient]
) -> None:
    name = unique("md-pending")
    real_env.create_request(request(name, "md-pending"), client=people["agent"])
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    message = webhook_refusal(patcher(people["intruder"], name, {"ownerReferences": [GHOST]}))
    assert "may change metadata.ownerReferences" in message
    time.sleep(GC_WINDOW)
    assert real_env.get_request(NS, name)["status"]["phase"] == "Pending"


def test_the_garbage_collectors_deletion_is_recorded_with_the_owner_it_followed(
    real_env: RealEnvironment, people: dict[str, ApiClient]
) -> None:
    """The requester may tie its own request to an owner; when the collector deletes it, the record
    says the collector did, following which owner."""
    name = unique("md-owned")
    real_env.create_request(request(name, "md-standing"), client=people["agent"])
    uid = real_env.wait_for_phase(NS, name, "Active", timeout=30)["metadata"]["uid"]
    patcher(people["agent"], name, {"ownerReferences": [GHOST]})()
    reason = revoked_reason(real_env, uid)
    assert reason == (
        f"the AccessRequest was deleted by the garbage collector ({GARBAGE_COLLECTOR_USERNAME}) following "
        f"its owner ConfigMap {NS}/ghost (uid {GHOST['uid']})"
    )
    wait_until(lambda: grant_bindings(real_env, uid) == [], timeout=20, what="the grant revoked")


def test_a_deletion_is_recorded_with_who_deleted(
    real_env: RealEnvironment, people: dict[str, ApiClient]
) -> None:
    name = unique("md-deleted")
    real_env.create_request(request(name, "md-standing"), client=people["agent"])
    uid = real_env.wait_for_phase(NS, name, "Active", timeout=30)["metadata"]["uid"]

    def delete() -> Any:
        return CustomObjectsApi(people["agent"]).delete_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", NS, "accessrequests", name
        )

    wait_until(lambda: _succeeds(delete), timeout=20, what="the requester's delete (RBAC arriving)")
    assert revoked_reason(real_env, uid) == f"the AccessRequest was deleted by {REQUESTER}"
    wait_until(lambda: grant_bindings(real_env, uid) == [], timeout=20, what="the grant revoked")


def test_the_deleter_stamp_cannot_be_written_by_hand(
    real_env: RealEnvironment, people: dict[str, ApiClient]
) -> None:
    name = unique("md-forged")
    real_env.create_request(request(name, "md-standing"), client=people["agent"])
    real_env.wait_for_phase(NS, name, "Active", timeout=30)
    forged = json.dumps({"username": "someone-else", "groups": [], "reason": "", "seal": "v1:00"})
    message = webhook_refusal(
        patcher(people["agent"], name, {"annotations": {DELETED_BY_ANNOTATION: forged}})
    )
    assert f"annotation {DELETED_BY_ANNOTATION} belongs to the jitgrant operator" in message


def _succeeds(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise
    return True
