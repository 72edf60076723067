from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitgrant.models import AccessRequestSpec, GrantPolicySpec, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "0h0m", "15", "1.5h", "-5m", "15min", "m", "1d"])
def test_bad_durations_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10 * 24 * 3600))
def test_format_and_parse_round_trip(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


def test_request_needs_exactly_one_of_cluster_role_or_rules() -> None:
    with pytest.raises(ValueError, match="exactly one of clusterRole or rules"):
        AccessRequestSpec.model_validate({"policy": "p", "namespace": "payments"})
    rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}
    with pytest.raises(ValueError, match="exactly one of clusterRole or rules"):
        AccessRequestSpec.model_validate(
            {"policy": "p", "namespace": "payments", "clusterRole": "x", "rules": [rule]}
        )


def test_policy_default_duration_cannot_exceed_max() -> None:
    with pytest.raises(ValueError, match="longer than maxDuration"):
        GrantPolicySpec.model_validate(
            {
                "requesters": {"users": ["alice"]},
                "namespaces": ["payments"],
                "grants": [{"clusterRole": "view"}],
                "maxDuration": "15m",
                "defaultDuration": "1h",
            }
        )


def test_required_approval_needs_approvers() -> None:
    with pytest.raises(ValueError, match="approvers"):
        GrantPolicySpec.model_validate(
            {
                "requesters": {"users": ["alice"]},
                "namespaces": ["payments"],
                "grants": [{"clusterRole": "view"}],
                "approval": {"required": True},
            }
        )
