"""`due`: when the scheduler must hand a request to the reconciler, from its status and annotations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitgrant.lifecycle.due import due
from jitgrant.models.vocabulary import RELEASE_ANNOTATION, REVOKE_ANNOTATION

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
LATER = "2026-01-01T12:10:00Z"


def test_an_active_grant_waits_for_its_expiry() -> None:
    assert due({"phase": "Active", "expiresAt": LATER}, {}, NOW) == NOW + timedelta(minutes=10)


def test_an_active_grant_past_its_expiry_is_due_at_its_expiry() -> None:
    assert due({"phase": "Active", "expiresAt": "2026-01-01T11:00:00Z"}, {}, NOW) < NOW


@pytest.mark.parametrize("annotation", [REVOKE_ANNOTATION, RELEASE_ANNOTATION])
def test_a_revoked_or_released_grant_is_due_now(annotation: str) -> None:
    assert due({"phase": "Active", "expiresAt": LATER}, {annotation: "INC-1"}, NOW) == NOW


@pytest.mark.parametrize("phase", [None, "Pending", "Approved"])
def test_anything_undecided_is_due_now(phase: str | None) -> None:
    status = {} if phase is None else {"phase": phase}
    assert due(status, {}, NOW) == NOW


@pytest.mark.parametrize("phase", ["Expired", "Revoked", "Denied", "TimedOut", "Failed"])
def test_an_ended_request_is_never_due(phase: str) -> None:
    assert due({"phase": phase, "expiresAt": LATER}, {REVOKE_ANNOTATION: "x"}, NOW) is None


@pytest.mark.parametrize("expires", [None, "", "tomorrow", 5])
def test_an_active_grant_without_a_readable_end_is_due_now(expires: object) -> None:
    assert due({"phase": "Active", "expiresAt": expires}, {}, NOW) == NOW
