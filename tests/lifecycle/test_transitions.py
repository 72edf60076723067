"""The lifecycle state machine, as pure functions: every transition and every refusal to move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgrant.approvals.counting import tally
from jitgrant.approvals.receipts import record_decision
from jitgrant.lifecycle import Action, next_step
from jitgrant.models import AccessRequest, GrantPolicySpec, Phase

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KEY = b"k" * 32
AGENT = "system:serviceaccount:agents:oncall-agent"


def policy(**overrides: Any) -> GrantPolicySpec:
    spec: dict[str, Any] = {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
    }
    spec.update(overrides)
    return GrantPolicySpec.model_validate(spec)


def request(
    *,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    requester: str | None = AGENT,
    **spec_overrides: Any,
) -> AccessRequest:
    spec: dict[str, Any] = {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "10m",
    }
    if requester is not None:
        spec["requester"] = {"username": requester, "groups": ["system:serviceaccounts"]}
    spec.update(spec_overrides)
    return AccessRequest.model_validate(
        {
            "metadata": {
                "name": "r",
                "namespace": "agents",
                "uid": "uid-1",
                "annotations": annotations or {},
            },
            "spec": spec,
            "status": status or {},
        }
    )


def step_for(
    req: AccessRequest,
    pol: GrantPolicySpec | None,
    *,
    now: datetime = NOW,
    seal_valid: bool = True,
    approvals: Any = None,
) -> Any:
    return next_step(
        request=req,
        policy=pol,
        now=now,
        seal_valid=seal_valid,
        tally=approvals,
        inline_rules_enabled=False,
        operator_namespace="jitgrant-system",
    )


def test_auto_approved_scope_is_approved_with_the_requested_duration() -> None:
    step = step_for(request(), policy())
    assert step.action is Action.APPROVE
    assert step.duration == timedelta(minutes=10)


def test_missing_duration_takes_the_policy_default() -> None:
    step = step_for(request(duration=None), policy(defaultDuration="5m"))
    assert step.action is Action.APPROVE and step.duration == timedelta(minutes=5)


def test_policy_refusal_is_a_denial_with_the_policy_reasons() -> None:
    step = step_for(request(namespace="kube-system"), policy())
    assert step.action is Action.DENY
    assert "kube-system" in step.message


def test_unsealed_or_unstamped_requester_fails_without_consulting_the_policy() -> None:
    assert step_for(request(), policy(), seal_valid=False).action is Action.FAIL
    step = step_for(request(requester=None), policy())
    assert step.action is Action.FAIL and step.reason == "RequesterNotVerified"


def test_missing_policy_is_a_denial_naming_it() -> None:
    step = step_for(request(), None)
    assert step.action is Action.DENY and "oncall-restart" in step.message


def test_approval_required_pends() -> None:
    pol = policy(approval={"required": True, "approvers": {"groups": ["sre"]}})
    assert step_for(request(), pol).action is Action.PEND


def _tally_with(
    pol: GrantPolicySpec, req: AccessRequest, *decisions: tuple[str, tuple[str, ...], str]
) -> Any:
    spec = req.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    recorded = [
        record_decision(
            key=KEY, request_uid="uid-1", spec=spec, approver=who, groups=groups, decision=decision, at=NOW
        )  # type: ignore[arg-type]
        for who, groups, decision in decisions
    ]
    assert req.spec.requester is not None
    return tally(
        policy=pol.approval,
        requester=req.spec.requester,
        recorded=recorded,
        key=KEY,
        request_uid="uid-1",
        spec=spec,
    )


def test_pending_request_is_approved_once_enough_distinct_approvers_agree() -> None:
    pol = policy(approval={"required": True, "approvers": {"groups": ["sre"]}, "minApprovals": 2})
    pending = request(status={"phase": "Pending", "requestedAt": NOW.isoformat()})
    one = _tally_with(pol, pending, ("alice", ("sre",), "approve"))
    assert step_for(pending, pol, approvals=one).action is Action.RECORD_APPROVALS
    same_twice = _tally_with(pol, pending, ("alice", ("sre",), "approve"), ("alice", ("sre",), "approve"))
    assert len(same_twice.counted) == 1 and not same_twice.approved
    two = _tally_with(pol, pending, ("alice", ("sre",), "approve"), ("bob", ("sre",), "approve"))
    step = step_for(pending, pol, approvals=two)
    assert step.action is Action.APPROVE and "alice" in step.message and "bob" in step.message


def test_a_single_deny_ends_a_pending_request() -> None:
    pol = policy(approval={"required": True, "approvers": {"groups": ["sre"]}})
    pending = request(status={"phase": "Pending", "requestedAt": NOW.isoformat()})
    denied = _tally_with(pol, pending, ("carol", ("sre",), "deny"))
    step = step_for(pending, pol, approvals=denied)
    assert step.action is Action.DENY and "carol" in step.message


def test_pending_times_out_at_the_policy_deadline_and_not_before() -> None:
    pol = policy(approval={"required": True, "approvers": {"groups": ["sre"]}, "pendingTimeout": "30m"})
    pending = request(status={"phase": "Pending", "requestedAt": NOW.isoformat()})
    waiting = step_for(pending, pol, now=NOW + timedelta(minutes=29))
    assert waiting.action is Action.WAIT and waiting.wake_at == NOW + timedelta(minutes=30)
    assert step_for(pending, pol, now=NOW + timedelta(minutes=30)).action is Action.TIME_OUT


def test_approved_request_is_checked_against_the_policy_again_at_activation() -> None:
    approved = request(status={"phase": "Approved"})
    assert step_for(approved, policy()).action is Action.ACTIVATE
    narrowed = policy(namespaces=["orders"])
    step = step_for(approved, narrowed)
    assert step.action is Action.DENY and step.message.startswith("at activation")


def test_active_grant_waits_until_expiry_then_expires() -> None:
    active = request(
        status={
            "phase": "Active",
            "activatedAt": NOW.isoformat(),
            "expiresAt": (NOW + timedelta(minutes=10)).isoformat(),
        }
    )
    waiting = step_for(active, policy(), now=NOW + timedelta(minutes=9, seconds=59))
    assert waiting.action is Action.WAIT and waiting.wake_at == NOW + timedelta(minutes=10)
    assert step_for(active, policy(), now=NOW + timedelta(minutes=10)).action is Action.EXPIRE


def test_active_grant_expires_even_when_its_policy_was_deleted() -> None:
    active = request(status={"phase": "Active", "expiresAt": NOW.isoformat()})
    assert step_for(active, None, now=NOW + timedelta(seconds=1)).action is Action.EXPIRE


def test_revoke_annotation_ends_active_and_pending_requests_with_its_reason() -> None:
    for phase in ("Active", "Pending", "Approved"):
        req = request(
            status={"phase": phase, "expiresAt": (NOW + timedelta(hours=1)).isoformat()},
            annotations={"jitgrant.dev/revoke": "incident closed"},
        )
        step = step_for(req, policy())
        assert step.action is Action.REVOKE and step.message == "incident closed"


@pytest.mark.parametrize("phase", ["Expired", "Revoked", "Denied", "TimedOut", "Failed"])
def test_terminal_phases_never_move_again(phase: str) -> None:
    req = request(status={"phase": phase}, annotations={"jitgrant.dev/revoke": "x"})
    assert step_for(req, policy()).action is Action.NONE


@given(
    phase=st.sampled_from(list(Phase)),
    offset=st.integers(min_value=-7200, max_value=7200),
    revoke=st.booleans(),
    has_policy=st.booleans(),
    seal=st.booleans(),
)
def test_no_step_ever_leads_from_a_terminal_phase_to_activation(
    phase: Phase, offset: int, revoke: bool, has_policy: bool, seal: bool
) -> None:
    req = request(
        status={
            "phase": phase.value,
            "requestedAt": NOW.isoformat(),
            "expiresAt": (NOW + timedelta(seconds=offset)).isoformat(),
        },
        annotations={"jitgrant.dev/revoke": "r"} if revoke else {},
    )
    step = step_for(req, policy() if has_policy else None, seal_valid=seal)
    if phase.terminal:
        assert step.action is Action.NONE
    if step.action is Action.ACTIVATE:
        assert phase is Phase.APPROVED and seal and has_policy and not revoke


def test_an_approval_short_of_quorum_is_recorded_once() -> None:
    pol = policy(approval={"required": True, "approvers": {"groups": ["sre"]}, "minApprovals": 2})
    pending = request(status={"phase": "Pending", "requestedAt": NOW.isoformat()})
    one = _tally_with(pol, pending, ("alice", ("sre",), "approve"))
    step = step_for(pending, pol, approvals=one)
    assert step.action is Action.RECORD_APPROVALS and "1 of 2" in step.message
    [entry] = one.counted
    recorded = request(
        status={
            "phase": "Pending",
            "requestedAt": NOW.isoformat(),
            "approvals": [{"approver": "alice", "at": entry.at.isoformat(), "receipt": entry.receipt}],
        }
    )
    assert step_for(recorded, pol, approvals=one).action is Action.WAIT


def test_granted_condition_is_true_only_while_active_and_keeps_its_transition_time() -> None:
    from jitgrant.lifecycle import granted_condition

    pending = granted_condition(
        phase=Phase.PENDING, reason="AwaitingApproval", message="", previous=(), now=NOW
    )
    assert pending.status == "False" and pending.last_transition_time == NOW
    later = NOW + timedelta(minutes=1)
    approved = granted_condition(
        phase=Phase.APPROVED, reason="Approved", message="", previous=(pending,), now=later
    )
    assert approved.status == "False" and approved.last_transition_time == NOW  # no flip, no new time
    active = granted_condition(
        phase=Phase.ACTIVE, reason="Granted", message="", previous=(approved,), now=later
    )
    assert active.status == "True" and active.last_transition_time == later


def _active(minutes: int = 10) -> AccessRequest:
    return request(
        status={
            "phase": "Active",
            "activatedAt": NOW.isoformat(),
            "expiresAt": (NOW + timedelta(minutes=minutes)).isoformat(),
        }
    )


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"namespaces": ["orders"]}, "namespace 'payments' is not in policy"),
        ({"grants": [{"clusterRole": "view"}]}, "jit-restart-checkout"),
        ({"requesters": {"users": ["alice"]}}, AGENT),
    ],
)
def test_an_active_grant_the_changed_policy_no_longer_allows_is_revoked(changed: Any, why: str) -> None:
    step = step_for(_active(), policy(**changed), now=NOW + timedelta(minutes=1))
    assert (step.action, step.reason) == (Action.REVOKE, "PolicyChanged")
    assert "no longer allows this grant" in step.message and why in step.message


def test_an_active_grant_whose_policy_was_deleted_is_revoked_before_its_expiry() -> None:
    step = step_for(_active(), None, now=NOW + timedelta(minutes=1))
    assert (step.action, step.reason) == (Action.REVOKE, "PolicyChanged")
    assert "'oncall-restart' was deleted" in step.message


def test_a_shortened_max_duration_cuts_the_window_and_a_longer_one_never_extends_it() -> None:
    cut = step_for(_active(), policy(maxDuration="4m"), now=NOW + timedelta(minutes=1))
    assert (cut.action, cut.wake_at) == (Action.SHORTEN, NOW + timedelta(minutes=4))
    past = step_for(_active(), policy(maxDuration="4m"), now=NOW + timedelta(minutes=5))
    assert (past.action, past.reason) == (Action.REVOKE, "PolicyChanged")
    longer = step_for(_active(), policy(maxDuration="1h"), now=NOW + timedelta(minutes=1))
    assert (longer.action, longer.wake_at) == (Action.WAIT, NOW + timedelta(minutes=10))
    # Once cut, the same policy asks nothing more: the window already ends at its maxDuration.
    shortened = step_for(_active(minutes=4), policy(maxDuration="4m"), now=NOW + timedelta(minutes=1))
    assert shortened.action is Action.WAIT


def test_an_approval_that_no_longer_counts_at_activation_denies() -> None:
    required = {"required": True, "approvers": {"users": ["alice"]}, "minApprovals": 1}
    approved = request(status={"phase": "Approved"})
    still = _tally_with(policy(approval=required), approved, ("alice", (), "approve"))
    assert step_for(approved, policy(approval=required), approvals=still).action is Action.ACTIVATE
    moved = {**required, "approvers": {"users": ["bob"]}}
    gone = _tally_with(policy(approval=moved), approved, ("alice", (), "approve"))
    step = step_for(approved, policy(approval=moved), approvals=gone)
    assert (step.action, step.reason) == (Action.DENY, "PolicyChanged")
    assert "0 of 1 count" in step.message and "alice" in step.message
