"""The console's entry points: build it for a way of signing in, serve until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from jitgrant.activity.files import AuditLogFiles
from jitgrant.client._api import Connection
from jitgrant.console.app import Console
from jitgrant.console.local import LocalLogin
from jitgrant.console.server import Server


def local_console(
    connect: Callable[[], Connection], *, audit_logs: Sequence[str] = ()
) -> tuple[Console, LocalLogin]:
    login = LocalLogin(connect=connect)
    console = Console(
        login=login,
        allowed_hosts=set(),
        activity_source=AuditLogFiles(Path(audit_logs[0])) if audit_logs else None,
    )
    return console, login


async def serve_local(
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    port: int,
    audit_logs: Sequence[str],
    on_ready: Callable[[str], None],
) -> None:
    # Loaded once now, so a bad kubeconfig fails before anything listens.
    Connection.from_kubeconfig(kubeconfig, context=context, namespace=namespace)
    console, login = local_console(
        lambda: Connection.from_kubeconfig(kubeconfig, context=context, namespace=namespace),
        audit_logs=audit_logs,
    )
    server = Server(console, host="127.0.0.1", port=port)
    base = await server.start()
    on_ready(f"{base}/login?token={login.token}")
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
