"""The per-cluster gate: own threads, a budget, and a breaker that fails fast while a cluster is dark.

The calls here are real blocking calls (sockets to a listener that never answers, threads waiting on
events), not stand-ins for the gate's own code.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.errors import Unavailable
from jitgrant.clusters.gate import CircuitOpen, CircuitState, ClusterGate, GateSettings, is_outage

CLUSTER = "arn:aws:eks:eu-west-1:111122223333:cluster/dark"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def blackhole() -> Iterator[tuple[str, int]]:
    """A listener the kernel accepts connections for, which never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()
    sock.close()


def _read_from(address: tuple[str, int], timeout: float) -> bytes:
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        return conn.recv(10)  # times out: socket.timeout is an OSError


def test_opens_after_calls_without_an_answer_then_fails_fast_without_a_thread(
    blackhole: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    gate = ClusterGate(CLUSTER, settings=GateSettings(failure_threshold=2, open_seconds=4.0), clock=clock)
    tried: list[str] = []

    def read() -> bytes:
        tried.append(threading.current_thread().name)
        return _read_from(blackhole, 0.2)

    async def run() -> None:
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await gate.call(read)
        assert gate.state is CircuitState.OPEN
        for _ in range(50):
            with pytest.raises(CircuitOpen) as refused:
                await gate.call(read)
        error = refused.value
        assert error.retryable and error.reason == "ClusterUnreachable"
        assert 3.5 <= error.retry_after <= 4.0  # when the probe goes
        assert "fail fast until a probe is answered" in error.message

    with caplog.at_level(logging.DEBUG, logger="jitgrant.clusters"):
        asyncio.run(run())
    assert len(tried) == 2  # the 50 refused calls never reached a thread
    assert all(name.startswith("jitgrant-target-") for name in tried)
    status = gate.status()
    assert (status.state, status.refused, status.failures) == (CircuitState.OPEN, 50, 2)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "circuit open" in warnings[0].getMessage()
    gate.close()


def test_one_probe_when_the_open_period_is_over_success_closes_failure_doubles_the_wait() -> None:
    clock = Clock()
    settings = GateSettings(failure_threshold=1, open_seconds=2.0, open_cap_seconds=5.0)
    gate = ClusterGate(CLUSTER, settings=settings, clock=clock)
    release = threading.Event()
    answers: list[str] = []

    def dark() -> None:
        raise ConnectionRefusedError("no")

    def slow_answer() -> str:
        release.wait(5)
        answers.append("probe")
        return "ok"

    async def run() -> None:
        with pytest.raises(ConnectionRefusedError):
            await gate.call(dark)
        clock.now += 2.0  # the open period is over: the next call is the probe
        with pytest.raises(ConnectionRefusedError):
            await gate.call(dark)
        assert gate.state is CircuitState.OPEN
        assert gate.status().probe_in == pytest.approx(4.0)  # doubled
        clock.now += 4.0
        with pytest.raises(ConnectionRefusedError):
            await gate.call(dark)
        assert gate.status().probe_in == pytest.approx(5.0)  # capped
        clock.now += 5.0
        probe = asyncio.create_task(gate.call(slow_answer))
        await asyncio.sleep(0.05)
        assert gate.state is CircuitState.HALF_OPEN
        with pytest.raises(CircuitOpen):  # one probe at a time; the rest still fail fast
            await gate.call(slow_answer)
        release.set()
        assert await probe == "ok"
        assert gate.state is CircuitState.CLOSED
        assert await gate.call(lambda: "next") == "next"

    asyncio.run(run())
    assert answers == ["probe"]
    gate.close()


def test_an_answer_is_not_an_outage() -> None:
    assert not is_outage(ApiException(status=404, reason="Not Found"))
    assert not is_outage(ApiException(status=403, reason="Forbidden"))
    assert not is_outage(ApiException(status=409, reason="Conflict"))
    assert is_outage(ApiException(status=503, reason="Service Unavailable"))
    assert is_outage(ApiException(status=429, reason="Too Many Requests"))
    assert is_outage(ApiException(status=0, reason="SSL"))
    assert is_outage(TimeoutError())
    assert is_outage(Unavailable(reason="AWSUnreachable", message="m", retryable=True))
    clock = Clock()
    gate = ClusterGate(CLUSTER, settings=GateSettings(failure_threshold=1), clock=clock)

    def missing() -> None:
        raise ApiException(status=404, reason="Not Found")

    async def run() -> None:
        for _ in range(5):
            with pytest.raises(ApiException):
                await gate.call(missing)

    asyncio.run(run())
    assert gate.state is CircuitState.CLOSED
    gate.close()


def test_a_dark_cluster_holds_its_own_threads_and_budget_never_the_shared_pool() -> None:
    """Its calls hang on its own threads, at most `calls` at once; the operator's pool (here one
    thread) and another cluster's gate go on meanwhile."""
    release = threading.Event()
    started: list[str] = []
    lock = threading.Lock()

    three = threading.Event()

    def hang() -> None:
        with lock:
            started.append(threading.current_thread().name)
            if len(started) == 3:
                three.set()
        release.wait(10)

    async def run() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        dark = ClusterGate("dark", settings=GateSettings(calls=3))
        healthy = ClusterGate("healthy", settings=GateSettings(calls=3))
        hung = [asyncio.create_task(dark.call(hang)) for _ in range(10)]
        assert await asyncio.to_thread(three.wait, 5)
        await asyncio.sleep(0.1)  # room for a fourth, which must not start
        assert len(started) == 3 and dark.status().calls_in_flight == 3  # the budget
        # The shared pool's one thread and the other cluster's threads are free.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "own"), 2) == "own"
        assert await asyncio.wait_for(healthy.call(lambda: "healthy"), 2) == "healthy"
        release.set()
        await asyncio.gather(*hung)
        dark.close()
        healthy.close()

    asyncio.run(run())
    assert all(name.startswith("jitgrant-target-") for name in started)


def test_passes_wait_for_their_own_cluster_slots() -> None:
    async def run() -> None:
        gate = ClusterGate("dark", settings=GateSettings(passes=2))
        inside = 0
        most = 0
        done = asyncio.Event()

        async def one() -> None:
            nonlocal inside, most
            async with gate.pass_slot():
                inside += 1
                most = max(most, inside)
                await done.wait()
                inside -= 1

        tasks = [asyncio.create_task(one()) for _ in range(6)]
        await asyncio.sleep(0.05)
        assert gate.status().passes_in_flight == 2
        done.set()
        await asyncio.gather(*tasks)
        assert most == 2

    asyncio.run(run())


def test_settings_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match=r"GateSettings.calls must be 1 or more, got 0"):
        GateSettings(calls=0)
    with pytest.raises(ValueError, match=r"open_seconds"):
        GateSettings(open_seconds=60.0, open_cap_seconds=30.0)
