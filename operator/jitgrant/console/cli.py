"""The console's entry points: build it for a way of signing in, serve until stopped."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from jitgrant.activity.files import AuditLogFiles
from jitgrant.client import Connection
from jitgrant.console.app import Console
from jitgrant.console.local import LocalLogin
from jitgrant.console.oidc import OidcLogin
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


async def serve_oidc(
    *,
    issuer: str,
    client_id: str,
    client_secret: str | None,
    ca_file: str | None,
    public_url: str,
    host: str,
    port: int,
    kubeconfig: str | None,
    namespace: str | None,
) -> None:
    """In the cluster: where the API server is from the pod (or a kubeconfig), and nothing else of
    it; each session's calls carry only the signed-in person's ID token."""
    server_only = (
        Connection.from_kubeconfig(kubeconfig, namespace=namespace)
        if kubeconfig
        else Connection.in_cluster(namespace=namespace)
    )
    public = public_url.rstrip("/")
    login = OidcLogin(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=f"{public}/oidc/callback",
        connect=lambda token: server_only.with_token(token),
        ssl_context=ssl.create_default_context(cafile=ca_file) if ca_file else None,
        secure_cookies=public.startswith("https://"),
    )
    console = Console(
        login=login,
        allowed_hosts={urlsplit(public).netloc},
        secure_cookies=public.startswith("https://"),
    )
    server = Server(console, host=host, port=port)
    await server.start()
    print(f"jitgrant console: serving {public} (listening on {host}:{port}), sign-in by {issuer}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
