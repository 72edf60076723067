"""Policy guardrails (identity-and-approvals.md, "Guardrails"): duration floors and fixed durations, approval
reason floors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from .builders import POLICY, check, policy, request


def test_a_fixed_duration_refuses_anything_else_and_says_the_one_value() -> None:
    fixed = policy(maxDuration="10m", minDuration="10m")
    for asked in ("1s", "9m59s", "11m"):
        decision = check(fixed, request(duration=asked))
        assert not decision.allowed
        assert decision.reasons[-1].endswith("(ask for exactly 10m)"), decision.reasons
    assert check(fixed, request(duration="10m")).allowed


def test_a_floor_states_the_range_and_a_request_without_duration_takes_the_default() -> None:
    ranged = policy(maxDuration="15m", minDuration="5m")
    decision = check(ranged, request(duration="1s"))
    assert decision.reasons[-1] == (
        f"duration 1s is shorter than policy {POLICY}'s minDuration 5m (ask for 5m to 15m)"
    )
    bare = request()
    assert check(ranged, bare.model_copy(update={"duration": None})).allowed


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"maxDuration": "5m", "minDuration": "10m"}, "minDuration 10m is longer than maxDuration 5m"),
        (
            {"maxDuration": "15m", "defaultDuration": "2m", "minDuration": "5m"},
            "minDuration 5m is longer than defaultDuration 2m",
        ),
    ],
)
def test_a_floor_no_request_can_meet_is_refused_at_apply(fields: dict[str, str], said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        policy(**fields)


def test_the_reason_floor_is_one_character_when_required_and_the_length_when_set() -> None:
    base = {"required": True, "approvers": {"groups": ["sre"]}}
    assert policy(approval=base).approval.reason_floor == 0
    assert policy(approval={**base, "reasonRequired": True}).approval.reason_floor == 1
    assert (
        policy(approval={**base, "reasonRequired": True, "minReasonLength": 12}).approval.reason_floor == 12
    )
    with pytest.raises(ValidationError):
        policy(approval={**base, "minReasonLength": -1})
