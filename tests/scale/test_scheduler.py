"""The scheduler's queue: one entry per request at its due time, replaced by newer events, dropped
when the request ends; the loop sleeps until the earliest entry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from jitgrant.reactor.runtime import Runtime
from jitgrant.reactor.scheduler import Scheduler
from jitgrant.reconcile.result import PassResult
from jitgrant.settings import OperatorSettings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class _Runtime:
    clock = staticmethod(lambda: NOW)
    stopping = False
    # Finished requests kept forever, so an ended one is dropped; their removal after a retention
    # is tested in tests/reconcile/test_retention.py.
    settings = OperatorSettings(finished_retention=timedelta(0))
    targets = None  # no target clusters: every pass takes the scheduler's own slots
    watched_policies: dict[str, Any] = {}


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
    assert scheduler.take_due(NOW) == []
    due = scheduler.take_due(NOW + timedelta(minutes=10))
    assert sorted(due) == sorted(("agents", f"r{i}") for i in range(1000) if i % 7 == 0)


async def test_due_requests_are_reconciled_first_come_first_served_and_no_more_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst is served in the order it became due, `concurrency` at a time: with every request
    of a burst reconciled at once, each advanced a step at a time and all finished last (create ->
    Active p50 was the whole burst's time)."""
    running: list[str] = []
    started: list[str] = []
    most = 0

    async def reconcile(self: Any, namespace: str, name: str, *, body: Any = None) -> PassResult:
        nonlocal most
        started.append(name)
        running.append(name)
        most = max(most, len(running))
        await asyncio.sleep(0.01)
        running.remove(name)
        return PassResult(requeue_at=NOW + timedelta(hours=1))

    monkeypatch.setattr("jitgrant.reactor.scheduler.Reconciler.reconcile", reconcile)
    scheduler = Scheduler(cast(Runtime, _Runtime()), concurrency=3)
    names = [f"r{index}" for index in range(20)]
    for name in names:
        scheduler.observe("agents", name, {}, {})  # new: due at once
    loop = asyncio.create_task(scheduler.run())
    try:
        for _ in range(200):
            if len(started) == len(names) and not running:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert started == names
    assert most == 3


def test_concurrency_below_one_is_refused_naming_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="concurrency must be 1 or more"):
        Scheduler(cast(Runtime, _Runtime()), concurrency=0)
