"""Issue 24 §5: which policies a request may be filed under at all (policy/gate.py)."""

from __future__ import annotations

from typing import Any

from jitgrant.models.vocabulary import Reason
from jitgrant.policy.gate import not_ready, policy_gate, ready_state

SPEC = {
    "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall"}]},
    "namespaces": ["payments"],
    "grants": [{"clusterRole": "jit-restart"}],
    "maxDuration": "15m",
}


def _policy(status: str | None, *, generation: int = 2, observed: int = 2) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}, "spec": SPEC}
    if status is not None:
        condition = {"type": "Ready", "status": status, "reason": "ClusterRoleNotFound", "message": "gone"}
        body["status"] = {"observedGeneration": observed, "conditions": [condition]}
    return body


def test_a_missing_policy_is_refused_by_name() -> None:
    spec, refusal = policy_gate("typo", None)
    assert spec is None and refusal is not None
    assert refusal.reason is Reason.POLICY_NOT_FOUND and "'typo' does not exist" in refusal.message


def test_an_invalid_policy_is_refused_with_its_field() -> None:
    spec, refusal = policy_gate("p", {"spec": {**SPEC, "maxDuration": "forever"}})
    assert spec is None and refusal is not None
    assert refusal.reason is Reason.POLICY_INVALID and "spec.maxDuration" in refusal.message


def test_ready_false_for_the_current_generation_refuses_with_the_condition() -> None:
    spec, refusal = policy_gate("p", _policy("False"))
    assert spec is not None and refusal is not None
    assert refusal.reason is Reason.POLICY_NOT_READY
    assert "not Ready (ClusterRoleNotFound: gone)" in refusal.message


def test_true_unknown_stale_or_unjudged_conditions_refuse_nothing() -> None:
    for body in (_policy("True"), _policy("Unknown"), _policy("False", observed=1), _policy(None)):
        spec, refusal = policy_gate("p", body)
        assert spec is not None and refusal is None, body
    assert not_ready("p", ready_state(_policy("False", observed=1))) is None
