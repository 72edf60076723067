"""Liveness and readiness that mean something, served over HTTP for the kubelet's probes.

- `/healthz` (liveness): the operator's event loop answers, and every watch stream the operator
  depends on has shown a sign of life within `watch_stale_after`. The server runs *on the
  operator's own event loop* (start it from kopf's `on.startup`), so a blocked loop cannot answer
  and the kubelet's probe times out: that is the responsiveness check, with no thread that could
  lie about it. A watch that was expected but never seen goes stale too, counted from when it was
  expected, so a watch that never started is caught as well.
- `/readyz` (readiness): start-up is done, the admission webhook server (if any) accepts
  connections, and the audit path accepts writes right now. The webhooks fail closed, so a replica
  marked ready before its webhook listens would fail API calls routed to it. A grant
  must be recorded before it exists (fail closed), so an operator that cannot record is not
  ready; it is not restarted for it either, because a restart would not fix a full disk or an
  unreachable sink.

Health listens on its own port (8081 in the chart), apart from the metrics port (8080): metrics
are served from a thread so that a scrape still answers while the loop is stuck, which is the
opposite of what a liveness probe must do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web

AuditReady = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Verdict:
    """A probe's answer; `reasons` says what is wrong (empty when ok)."""

    ok: bool
    reasons: tuple[str, ...] = ()


async def _always_ready() -> bool:
    return True


async def _accepts_connections(host: str, port: int) -> bool:
    """A TCP connection is accepted (no TLS handshake: listening is the question)."""
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class Health:
    """Signals from the operator (watch events, start-up) and the checks the probes run on them."""

    def __init__(
        self,
        *,
        watch_stale_after: timedelta = timedelta(minutes=10),
        audit_ready: AuditReady = _always_ready,
        audit_timeout: timedelta = timedelta(seconds=3),
        clock: Callable[[], float] = time.monotonic,
        webhook: tuple[str, int] | None = None,
    ) -> None:
        if watch_stale_after <= timedelta(0):
            raise ValueError("watch_stale_after must be longer than zero")
        self.watch_stale_after = watch_stale_after
        self.audit_ready = audit_ready
        self.audit_timeout = audit_timeout
        self._clock = clock
        # Where the admission webhook server listens; a wildcard address is reached on loopback.
        if webhook is not None and webhook[0] in ("0.0.0.0", "::", ""):  # noqa: S104
            webhook = ("127.0.0.1" if webhook[0] != "::" else "::1", webhook[1])
        self.webhook = webhook
        self._last_alive: dict[str, float] = {}
        self._started = False
        self._runner: web.AppRunner | None = None

    # Signals

    def expect_watch(self, resource: str) -> None:
        """Declare a watch stream liveness depends on; its silence is counted from now."""
        self._last_alive.setdefault(resource, self._clock())

    def mark_watch_alive(self, resource: str) -> None:
        """The stream for `resource` delivered something (an event, the initial listing)."""
        self._last_alive[resource] = self._clock()

    def mark_started(self) -> None:
        """Start-up is done: settings loaded, audit trail opened, initial sweep finished."""
        self._started = True

    # Checks

    def liveness(self) -> Verdict:
        now = self._clock()
        limit = self.watch_stale_after.total_seconds()
        reasons = tuple(
            f"watch stream for {resource} silent for {now - seen:.0f}s (limit {limit:.0f}s)"
            for resource, seen in sorted(self._last_alive.items())
            if now - seen > limit
        )
        return Verdict(ok=not reasons, reasons=reasons)

    async def readiness(self) -> Verdict:
        if not self._started:
            return Verdict(ok=False, reasons=("start-up not finished",))
        if self.webhook is not None and not await _accepts_connections(*self.webhook):
            host, port = self.webhook
            return Verdict(ok=False, reasons=(f"admission webhook server not listening on {host}:{port}",))
        try:
            async with asyncio.timeout(self.audit_timeout.total_seconds()):
                accepts = await self.audit_ready()
        except TimeoutError:
            return Verdict(
                ok=False,
                reasons=(f"audit path did not answer within {self.audit_timeout.total_seconds():g}s",),
            )
        except Exception as exc:  # any failure of the check means "cannot record", never a crash
            return Verdict(ok=False, reasons=(f"audit path check failed: {type(exc).__name__}: {exc}",))
        if not accepts:
            return Verdict(ok=False, reasons=("audit path does not accept writes",))
        return Verdict(ok=True)

    # HTTP

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._serve_liveness)
        app.router.add_get("/readyz", self._serve_readiness)
        return app

    async def start_server(self, *, host: str, port: int) -> int:
        """Serve /healthz and /readyz on the running event loop; returns the bound port (0 = ephemeral)."""
        if self._runner is not None:
            raise RuntimeError("health server already running")
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        return int(runner.addresses[0][1])

    async def stop_server(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _serve_liveness(self, request: web.Request) -> web.Response:
        return _respond(self.liveness())

    async def _serve_readiness(self, request: web.Request) -> web.Response:
        return _respond(await self.readiness())


def _respond(verdict: Verdict) -> web.Response:
    if verdict.ok:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="".join(f"{reason}\n" for reason in verdict.reasons))


def directory_accepts_writes(directory: Path) -> AuditReady:
    """An `audit_ready` check: a small file can be created, fsynced and removed in `directory`.

    Meant for the audit spool, which is where a record must land before a grant exists. It runs in
    a thread, so a hung volume makes the check time out instead of stalling the event loop.
    """

    def probe() -> bool:
        try:
            fd, name = tempfile.mkstemp(prefix=".health-", dir=directory)
        except OSError:
            return False
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
            os.unlink(name)

    async def check() -> bool:
        return await asyncio.to_thread(probe)

    return check
