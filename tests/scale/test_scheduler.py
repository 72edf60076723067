"""The scheduler's queue: one entry per request at its due time, replaced by newer events, dropped
when the request ends; the loop sleeps until the earliest entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from jitgrant.handlers.runtime import Runtime
from jitgrant.handlers.scheduler import Scheduler
from jitgrant.settings import OperatorSettings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class _Runtime:
    clock = staticmethod(lambda: NOW)
    stopping = False
    # Finished requests kept forever, so an ended one is dropped; their removal after a retention
    # is tested in tests/reconcile/test_retention.py.
    settings = OperatorSettings(finished_retention=timedelta(0))


def _scheduler() -> Scheduler:
    return Scheduler(cast(Runtime, _Runtime()))


def _active(minutes: int) -> dict[str, Any]:
    return {"phase": "Active", "expiresAt": (NOW + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_the_earliest_expiry_is_next_and_a_newer_event_replaces_an_entry() -> None:
    scheduler = _scheduler()
    scheduler.observe("agents", "late", _active(30), {})
    scheduler.observe("agents", "soon", _active(5), {})
    assert scheduler.next_due() == NOW + timedelta(minutes=5)
    assert len(scheduler) == 2
    scheduler.observe("agents", "soon", {"phase": "Expired"}, {})  # it ended: forgotten
    assert scheduler.next_due() == NOW + timedelta(minutes=30)
    assert len(scheduler) == 1
    scheduler.observe("agents", "late", _active(30), {"jitgrant.dev/revoke": "INC-1"})
    assert scheduler.next_due() == NOW  # revoked: due at once


def test_nothing_is_due_before_its_time() -> None:
    scheduler = _scheduler()
    for index in range(1000):
        scheduler.observe("agents", f"r{index}", _active(10 + index % 7), {})
    assert scheduler._pop_due(NOW) == []
    due = scheduler._pop_due(NOW + timedelta(minutes=10))
    assert sorted(due) == sorted(("agents", f"r{i}") for i in range(1000) if i % 7 == 0)
