"""tally counts only valid receipts from distinct eligible approvers, never the requester."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgrant.approvals.counting import ApprovalTally, tally
from jitgrant.approvals.receipts import RecordedApproval, parse_recorded, record_decision
from jitgrant.models import ApprovalPolicy, Approvers, RequesterStamp

KEY = b"c" * 32
UID = "uid-1"
AGENT = "system:serviceaccount:agents:oncall"
REQUESTER = RequesterStamp(username=AGENT, groups=("system:serviceaccounts", "system:authenticated"))
SPEC: dict[str, Any] = {
    "policy": "prod",
    "namespace": "payments",
    "clusterRole": "jit-restart",
    "requester": {"username": AGENT, "groups": ["system:serviceaccounts", "system:authenticated"]},
}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _policy(
    *, users: tuple[str, ...] = ("alice",), groups: tuple[str, ...] = ("sre",), n: int = 1
) -> ApprovalPolicy:
    return ApprovalPolicy(required=True, approvers=Approvers(users=users, groups=groups), min_approvals=n)


def _decide(
    approver: str, groups: tuple[str, ...] = (), decision: str = "approve", uid: str = UID, minute: int = 0
) -> RecordedApproval:
    return record_decision(
        key=KEY,
        request_uid=uid,
        spec=SPEC,
        approver=approver,
        groups=groups,
        decision=decision,  # type: ignore[arg-type]
        at=T0 + timedelta(minutes=minute),
    )


def _tally(recorded: list[RecordedApproval], policy: ApprovalPolicy | None = None) -> ApprovalTally:
    return tally(
        policy=policy or _policy(),
        requester=REQUESTER,
        recorded=recorded,
        key=KEY,
        request_uid=UID,
        spec=SPEC,
    )


def _reasons(result: ApprovalTally) -> list[str]:
    return [reason for _, reason in result.ignored]


def test_one_listed_user_approves() -> None:
    result = _tally([_decide("alice")])
    assert result.approved and result.denied_by is None and len(result.counted) == 1 and result.needed == 1


def test_group_member_approves_by_the_groups_recorded_at_approval() -> None:
    assert _tally([_decide("bob", ("sre",))]).approved


def test_no_approval_needed_when_policy_does_not_require_it() -> None:
    result = _tally([], ApprovalPolicy(required=False))
    assert result.approved and result.needed == 0


def test_nothing_recorded_is_not_approved() -> None:
    result = _tally([])
    assert not result.approved and result.missing == 1


def test_requester_cannot_approve_itself_even_if_listed() -> None:
    result = _tally([_decide(AGENT, ("sre",))], _policy(users=(AGENT,)))
    assert not result.approved
    assert "is the requester" in _reasons(result)[0]


def test_requester_in_another_case_or_with_whitespace_is_still_the_requester() -> None:
    result = _tally([_decide(" " + AGENT.upper())], _policy(users=(" " + AGENT.upper(),)))
    assert not result.approved and "is the requester" in _reasons(result)[0]


def test_second_service_account_in_a_shared_group_is_not_counted() -> None:
    helper = "system:serviceaccount:agents:helper"
    result = _tally(
        [_decide(helper, ("system:serviceaccounts",))], _policy(groups=("system:serviceaccounts",))
    )
    assert not result.approved
    assert "never through group membership" in _reasons(result)[0]


def test_service_account_listed_by_name_may_approve() -> None:
    bot = "system:serviceaccount:release:approver-bot"
    assert _tally([_decide(bot)], _policy(users=(bot,))).approved


def test_non_approver_is_ignored_with_the_allowed_set_in_the_reason() -> None:
    result = _tally([_decide("mallory", ("devs",))])
    assert not result.approved
    assert _reasons(result) == [
        "mallory is not an approver for this policy (approvers: users alice; groups sre)"
    ]


def test_username_differing_in_case_from_a_listed_user_is_not_that_user() -> None:
    result = _tally([_decide("Alice"), _decide("alice ")])
    assert not result.approved and len(result.ignored) == 2


def test_same_approver_twice_counts_once() -> None:
    result = _tally([_decide("alice"), _decide("alice", minute=1)], _policy(n=2))
    assert not result.approved and len(result.counted) == 1
    assert "each person counts once" in _reasons(result)[0]


def test_two_distinct_approvers_meet_min_approvals_two() -> None:
    assert _tally([_decide("alice"), _decide("bob", ("sre",))], _policy(n=2)).approved


def test_one_deny_from_an_approver_denies_despite_approvals() -> None:
    deny = _decide("bob", ("sre",), "deny", minute=1)
    result = _tally([_decide("alice"), deny, _decide("carol", ("sre",), minute=2)], _policy(n=2))
    assert not result.approved and result.denied_by == deny


def test_deny_from_a_non_approver_or_the_requester_changes_nothing() -> None:
    result = _tally([_decide("mallory", decision="deny"), _decide(AGENT, decision="deny"), _decide("alice")])
    assert result.approved and result.denied_by is None


def test_annotation_typed_without_the_webhook_is_ignored() -> None:
    typed = json.dumps(
        [
            {
                "approver": "alice",
                "groups": [],
                "at": T0.isoformat(),
                "decision": "approve",
                "reason": "",
                "receipt": "",
            }
        ]
    )
    result = _tally(parse_recorded(typed))
    assert not result.approved and "does not verify" in _reasons(result)[0]


def test_forged_receipt_is_ignored() -> None:
    forged = dataclasses.replace(_decide("alice"), receipt="v1:" + "ab" * 32)
    assert not _tally([forged]).approved


def test_receipt_from_a_deleted_request_with_the_same_name_is_ignored() -> None:
    old = _decide("alice", uid="uid-of-the-deleted-request")
    result = _tally([old])
    assert not result.approved and "does not verify" in _reasons(result)[0]


def test_receipt_for_another_spec_is_ignored() -> None:
    entry = _decide("alice")
    result = tally(
        policy=_policy(),
        requester=REQUESTER,
        recorded=[entry],
        key=KEY,
        request_uid=UID,
        spec={**SPEC, "clusterRole": "cluster-admin"},
    )
    assert not result.approved


def test_receipt_with_changed_groups_is_ignored() -> None:
    entry = dataclasses.replace(_decide("mallory", ("devs",)), groups=("sre",))
    assert not _tally([entry]).approved


@given(
    approvers=st.lists(st.sampled_from(["alice", "bob", "carol", "Alice", AGENT, "mallory"]), max_size=8),
    needed=st.integers(min_value=1, max_value=4),
)
def test_approved_only_with_enough_distinct_eligible_people(approvers: list[str], needed: int) -> None:
    # needed=4 of 3 users is refused by the model now (unreachable quorum); tally must still never approve it.
    approvers_ = Approvers(users=("alice", "bob", "carol"))
    policy = ApprovalPolicy.model_construct(required=True, approvers=approvers_, min_approvals=needed)
    result = _tally([_decide(name, minute=i) for i, name in enumerate(approvers)], policy)
    eligible = {name for name in approvers if name in {"alice", "bob", "carol"}}
    assert result.approved == (len(eligible) >= needed)
    assert len({entry.approver for entry in result.counted}) == len(result.counted)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_needed_reflects_min_approvals(n: int) -> None:
    assert _tally([], _policy(n=n)).needed == n
