"""/healthz and /readyz over real HTTP, with a fake clock instead of waiting for staleness."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from jitgrant.health import Health, directory_accepts_writes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Serve = Callable[[Health], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Health] = []

    async def start(health: Health) -> str:
        port = await health.start_server(host="127.0.0.1", port=0)
        started.append(health)
        return f"http://127.0.0.1:{port}"

    yield start
    for health in started:
        await health.stop_server()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_liveness_fails_when_a_watch_stream_goes_silent(clock: FakeClock, serve: Serve) -> None:
    health = Health(watch_stale_after=timedelta(seconds=60), clock=clock)
    base = await serve(health)
    health.mark_watch_alive("accessrequests.v1alpha1.jitgrant.dev")
    health.mark_watch_alive("grantpolicies.v1alpha1.jitgrant.dev")
    assert await get(f"{base}/healthz") == (200, "ok\n")

    clock.now += 59
    health.mark_watch_alive("grantpolicies.v1alpha1.jitgrant.dev")
    clock.now += 2  # accessrequests silent for 61 s, grantpolicies for 2 s
    status, text = await get(f"{base}/healthz")
    assert status == 503
    assert text == "watch stream for accessrequests.v1alpha1.jitgrant.dev silent for 61s (limit 60s)\n"

    health.mark_watch_alive("accessrequests.v1alpha1.jitgrant.dev")
    assert await get(f"{base}/healthz") == (200, "ok\n")


async def test_an_expected_watch_that_never_starts_goes_stale(clock: FakeClock, serve: Serve) -> None:
    health = Health(watch_stale_after=timedelta(seconds=30), clock=clock)
    base = await serve(health)
    health.expect_watch("accessrequests.v1alpha1.jitgrant.dev")
    clock.now += 30
    assert (await get(f"{base}/healthz"))[0] == 200
    health.expect_watch("accessrequests.v1alpha1.jitgrant.dev")  # declaring again does not reset it
    clock.now += 1
    status, text = await get(f"{base}/healthz")
    assert status == 503
    assert "accessrequests.v1alpha1.jitgrant.dev silent for 31s" in text


async def test_liveness_needs_the_event_loop_to_answer(serve: Serve) -> None:
    """The probe is served on the operator's loop: while the loop is blocked, nothing answers."""
    base = await serve(Health())

    def probe() -> str:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=0.5) as response:
                return f"answered {response.status}"
        except (TimeoutError, urllib.error.URLError):
            return "no answer"

    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, probe) == "answered 200"
    pending = loop.run_in_executor(None, probe)
    time.sleep(1.0)  # noqa: ASYNC251 - deliberately block the event loop, as a stuck handler would
    assert await pending == "no answer"
    assert await loop.run_in_executor(None, probe) == "answered 200"


async def test_readiness_waits_for_start_up_and_audit(clock: FakeClock, serve: Serve) -> None:
    accepting = True

    async def audit_ready() -> bool:
        return accepting

    health = Health(audit_ready=audit_ready, clock=clock)
    base = await serve(health)
    assert await get(f"{base}/readyz") == (503, "start-up not finished\n")
    health.mark_started()
    assert await get(f"{base}/readyz") == (200, "ok\n")
    accepting = False
    assert await get(f"{base}/readyz") == (503, "audit path does not accept writes\n")
    assert (await get(f"{base}/healthz"))[0] == 200  # not ready is not dead: no restart for it


async def test_not_ready_until_the_webhook_server_listens(serve: Serve) -> None:
    """The webhooks fail closed: a replica must not take traffic before its webhook accepts it."""
    with socket.socket() as probe:  # a port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = Health(webhook=("0.0.0.0", port))
    health.mark_started()
    base = await serve(health)
    assert await get(f"{base}/readyz") == (
        503,
        f"admission webhook server not listening on 127.0.0.1:{port}\n",
    )
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", port)
    try:
        assert await get(f"{base}/readyz") == (200, "ok\n")
    finally:
        server.close()
        await server.wait_closed()


async def test_readiness_fails_when_the_audit_check_raises_or_hangs(serve: Serve) -> None:
    async def broken() -> bool:
        raise OSError("No space left on device")

    async def hung() -> bool:
        await asyncio.Event().wait()
        return True

    health = Health(audit_ready=broken)
    health.mark_started()
    base = await serve(health)
    assert await get(f"{base}/readyz") == (503, "audit path check failed: OSError: No space left on device\n")

    health.audit_ready = hung
    health.audit_timeout = timedelta(seconds=0.2)
    assert await get(f"{base}/readyz") == (503, "audit path did not answer within 0.2s\n")


async def test_spool_directory_check(tmp_path: Path) -> None:
    assert await directory_accepts_writes(tmp_path)() is True
    assert os.listdir(tmp_path) == []  # the probe file is removed again
    assert await directory_accepts_writes(tmp_path / "missing")() is False
    Path(tmp_path, "file").touch()  # noqa: ASYNC240 - test set-up
    assert await directory_accepts_writes(tmp_path / "file")() is False


async def test_server_refuses_to_start_twice_and_rejects_bad_windows(serve: Serve) -> None:
    health = Health()
    await serve(health)
    with pytest.raises(RuntimeError, match="already running"):
        await health.start_server(host="127.0.0.1", port=0)
    with pytest.raises(ValueError, match="longer than zero"):
        Health(watch_stale_after=timedelta(0))
