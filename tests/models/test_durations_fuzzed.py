"""Issue 11 §8: no duration text makes the models raise anything but a validation error naming the
field. `9223372036854775807s` raised a raw OverflowError from timedelta."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jitgrant.models import AccessRequestSpec, GrantPolicySpec, parse_duration
from jitgrant.models.base import MAX_DURATION

HUGE = "9223372036854775807s"

# Text shaped like a duration (digits and units, in any order and size) plus arbitrary text.
DURATION_LIKE = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**25), st.sampled_from(["h", "m", "s", "d", "", "."])),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(f"{n}{unit}" for n, unit in parts))
ANY_TEXT = DURATION_LIKE | st.text(max_size=40)


def request_with(duration: str) -> dict[str, Any]:
    return {"policy": "p", "namespace": "payments", "clusterRole": "view", "duration": duration}


def policy_with(**fields: Any) -> dict[str, Any]:
    return {
        "requesters": {"users": ["alice"]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "view"}],
        **fields,
    }


def only_error(error: ValidationError) -> dict[str, Any]:
    [item] = error.errors()
    return dict(item)


def test_a_huge_request_duration_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        AccessRequestSpec.model_validate(request_with(HUGE))
    item = only_error(raised.value)
    assert item["loc"] == ("duration",)
    assert "longer than the longest accepted, 8784h" in item["msg"]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"maxDuration": HUGE}, ("maxDuration",)),
        ({"defaultDuration": HUGE}, ("defaultDuration",)),
        ({"approval": {"pendingTimeout": HUGE}}, ("approval", "pendingTimeout")),
        ({"maxDuration": "99999999999999999999h"}, ("maxDuration",)),
    ],
)
def test_a_huge_policy_duration_is_a_validation_error_naming_the_field(
    fields: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        GrantPolicySpec.model_validate(policy_with(**fields))
    assert only_error(raised.value)["loc"] == loc


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_parse_duration_returns_a_bounded_positive_window_or_a_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as error:
        assert "duration" in str(error)
        return
    assert timedelta(0) < value <= MAX_DURATION


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_request_duration_parses_or_fails_validation_on_that_field(text: str) -> None:
    try:
        spec = AccessRequestSpec.model_validate(request_with(text))
    except ValidationError as error:
        assert {tuple(item["loc"])[:1] for item in error.errors()} == {("duration",)}
        return
    assert spec.duration_delta is not None and spec.duration_delta <= MAX_DURATION


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT, ANY_TEXT)
def test_any_policy_durations_parse_or_fail_validation_naming_a_duration_field(
    maximum: str, default: str
) -> None:
    try:
        spec = GrantPolicySpec.model_validate(policy_with(maxDuration=maximum, defaultDuration=default))
    except ValidationError as error:
        fields = {str(item["loc"][0]) if item["loc"] else "" for item in error.errors()}
        # defaultDuration > maxDuration is reported by the model, not by one field.
        assert fields <= {"maxDuration", "defaultDuration", ""}, error
        return
    assert spec.default_duration_delta <= spec.max_duration_delta <= MAX_DURATION


def test_the_longest_accepted_duration_is_accepted() -> None:
    assert parse_duration("8784h") == MAX_DURATION
    with pytest.raises(ValueError, match="longest accepted"):
        parse_duration("8784h1s")
