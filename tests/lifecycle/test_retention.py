"""Retention of finished requests: when one is removed, from its status, the setting and the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitgrant.lifecycle.due import due
from jitgrant.lifecycle.retention import (
    KEEP_FOREVER,
    Disposal,
    describe_retention,
    parse_retention,
    removal,
)
from jitgrant.models import Phase

NOW = datetime(2026, 1, 8, 12, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
FINISHED = sorted(p.value for p in Phase if p.terminal)
LIVE = sorted(p.value for p in Phase if not p.terminal)


def test_the_finished_phases_are_the_six_terminal_ones() -> None:
    # Applied: an extension whose time was added to its grant (the grant itself stays Active).
    assert FINISHED == ["Applied", "Denied", "Expired", "Failed", "Revoked", "TimedOut"]


@pytest.mark.parametrize("phase", FINISHED)
def test_a_finished_request_waits_until_its_retention_is_over(phase: str) -> None:
    status = {"phase": phase, "endedAt": "2026-01-02T12:00:00Z"}
    verdict = removal(status, retention=WEEK, now=NOW)
    assert verdict.disposal is Disposal.WAIT
    assert verdict.remove_at == NOW + timedelta(days=1)
    assert due(status, {}, NOW, retention=WEEK) == NOW + timedelta(days=1)


@pytest.mark.parametrize("phase", FINISHED)
def test_a_finished_request_is_removed_once_its_retention_is_over(phase: str) -> None:
    status = {"phase": phase, "endedAt": "2026-01-01T12:00:00Z"}  # exactly 7 days ago
    verdict = removal(status, retention=WEEK, now=NOW)
    assert verdict.disposal is Disposal.REMOVE
    assert verdict.ended_at == NOW - WEEK
    assert due(status, {}, NOW, retention=WEEK) == NOW


def test_one_second_before_the_end_of_the_retention_it_is_kept() -> None:
    status = {"phase": "Denied", "endedAt": "2026-01-01T12:00:01Z"}
    assert removal(status, retention=WEEK, now=NOW).disposal is Disposal.WAIT


@pytest.mark.parametrize("phase", [*LIVE, None, "Bogus"])
def test_a_request_that_has_not_finished_is_never_removed(phase: str | None) -> None:
    # Even with an endedAt long past (written by hand): only the phase says it finished.
    status = {"phase": phase, "endedAt": "2020-01-01T00:00:00Z"}
    assert removal(status, retention=timedelta(seconds=1), now=NOW).disposal is Disposal.NONE


@pytest.mark.parametrize("phase", FINISHED)
def test_a_retention_of_zero_keeps_finished_requests_forever(phase: str) -> None:
    status = {"phase": phase, "endedAt": "2020-01-01T00:00:00Z"}
    assert removal(status, retention=KEEP_FOREVER, now=NOW).disposal is Disposal.NONE
    assert due(status, {}, NOW, retention=KEEP_FOREVER) is None
    assert due(status, {}, NOW) is None  # the default of `due` itself keeps them


@pytest.mark.parametrize("ended", [None, "", "last week", "2026-01-01T00:00:00", 17])
def test_a_finished_request_without_a_readable_end_gets_one_stamped_not_removed(ended: object) -> None:
    status = {"phase": "Expired", "endedAt": ended}
    assert removal(status, retention=timedelta(seconds=1), now=NOW).disposal is Disposal.STAMP
    assert due(status, {}, NOW, retention=timedelta(seconds=1)) == NOW  # the reconciler stamps it


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", KEEP_FOREVER),
        ("0s", KEEP_FOREVER),
        ("168h", WEEK),
        ("90m", timedelta(minutes=90)),
        ("2s", timedelta(seconds=2)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_retention_is_written_as_durations_are(text: str, expected: timedelta) -> None:
    assert parse_retention(text) == expected


@pytest.mark.parametrize("text", ["", "7d", "-1h", "1.5h", "forever", "9000h", "h"])
def test_a_wrong_retention_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"keep forever.*168h") as caught:
        parse_retention(text)
    assert repr(text) in str(caught.value)


def test_retention_is_described_for_people() -> None:
    assert describe_retention(WEEK) == "168h"
    assert describe_retention(KEEP_FOREVER) == "forever"
