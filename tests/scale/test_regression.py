"""A generous guard on the order of magnitude of what bench/grants.py measures (it asserts nothing).

Before the scheduler, 1,000 requests filed at once took 128 s (p50) to become Active, expiries lagged
35-75 s, and each live grant had a 1 s timer. These bounds are ten times looser than what the
embedded cluster does now on two busy cores, so they fail on a regression, not on a slow machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import (
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    wait_until,
)

from .replicas import AUTO_POLICY, CLUSTER_ROLE, request

LIVE, SHORT = 20, 10


class CountingCluster:
    """The operator's own cluster, counting reads of requests (the reconciler's first call)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gets = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_request(self, namespace: str, name: str) -> Any:
        self.gets += 1
        return await self.inner.get_request(namespace, name)


COUNTERS: list[CountingCluster] = []


def _count(runtime: Runtime) -> None:
    counting = CountingCluster(runtime.own)
    COUNTERS.append(counting)
    runtime.own = cast(Any, counting)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(minutes=10), runtime_hook=_count) as environment:
        environment.apply([*CLUSTER_ROLE, AUTO_POLICY])
        environment.allow_to_request("agents", service_account="oncall-agent")
        yield environment


def test_many_at_once_become_active_quickly_and_expire_on_time_with_nothing_polled(env: Environment) -> None:
    agents = [env.client_for_service_account("agents", "oncall-agent") for _ in range(4)]
    names = [(f"live-{i}", "10m") for i in range(LIVE)] + [(f"short-{i}", "5s") for i in range(SHORT)]
    started = time.monotonic()

    def file(index: int) -> None:
        name, duration = names[index]
        env.create_request(request(name, duration), client=agents[index % len(agents)])

    with ThreadPoolExecutor(len(agents)) as pool:
        list(pool.map(file, range(len(names))))

    def all_active_or_ended() -> bool | None:
        phases = [(env.get_request("agents", n).get("status") or {}).get("phase") for n, _ in names]
        return all(p in ("Active", "Expired") for p in phases) or None

    try:
        wait_until(all_active_or_ended, timeout=120, what=f"{len(names)} requests to become Active")
    except AssertionError:
        stuck = {n: env.get_request("agents", n).get("status") for n, _ in names}
        stuck = {n: s for n, s in stuck.items() if (s or {}).get("phase") not in ("Active", "Expired")}
        raise AssertionError(
            f"{len(stuck)} not Active after 120 s, e.g. {next(iter(stuck.items()))}"
        ) from None
    took = time.monotonic() - started
    assert took < 120, f"{len(names)} requests took {took:.0f}s to become Active"

    # Expiries: each within 10 s of its expiresAt (it was 35-75 s; status times have 1 s resolution).
    for index in range(SHORT):
        ended = env.wait_for_phase("agents", f"short-{index}", "Expired", timeout=30)
        lag = (_t(ended["status"]["endedAt"]) - _t(ended["status"]["expiresAt"])).total_seconds()
        assert lag <= 10, f"short-{index} ended {lag:.0f}s after its expiry"

    # With LIVE grants live and none due, the operator reads nothing.
    time.sleep(1.0)
    counter = COUNTERS[-1]
    before = counter.gets
    time.sleep(3.0)
    assert counter.gets == before, f"{counter.gets - before} reads of requests while nothing was due"

    # A new request is not slowed down by the live ones.
    created = time.monotonic()
    env.create_request(request("latecomer", "10m"), client=agents[0])
    env.wait_for_phase("agents", "latecomer", "Active", timeout=10)
    assert time.monotonic() - created < 10


def test_a_grant_costs_a_handful_of_api_calls(env: Environment) -> None:
    """From filed to Active the operator made 21.5 calls per grant (7 reads of the request and 6 of
    the policy, a finalizer patch, three status writes); now 7: one read of the policy and one of
    the ClusterRole, the request taken from the watch event, the approval riding on the plan's
    write, the finalizer set by the mutating webhook, two Events. Counted in the API
    server's own audit log, so every call counts, whoever in the operator makes it."""
    log = env.state_dir / "kube-apiserver-audit.log"
    mark = log.stat().st_size
    agent = env.client_for_service_account("agents", "oncall-agent")
    names = [f"calls-{i}" for i in range(5)]
    for name in names:
        env.create_request(request(name, "10m"), client=agent)
    for name in names:
        env.wait_for_phase("agents", name, "Active", timeout=30)
    time.sleep(1.0)  # anything the operator does after Active counts too
    operator = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
    calls: list[str] = []
    with log.open() as lines:
        lines.seek(mark)
        for line in lines:
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if entry["user"]["username"] == operator and entry["verb"] not in ("watch", "list"):
                calls.append(
                    f"{entry['verb']} {ref.get('resource')}/{ref.get('subresource') or ''} {ref.get('name')}"
                    f" {entry['responseStatus']['code']}"
                )
    per_grant = len(calls) / len(names)
    assert per_grant <= 12, f"{per_grant:.1f} API calls per grant: {sorted(calls)}"
    # Two status writes per grant that land; a 409 (another writer got there first) is retried.
    status_writes = [c for c in calls if c.startswith("patch accessrequests/status") and c.endswith(" 200")]
    assert len(status_writes) <= 2 * len(names), sorted(calls)
