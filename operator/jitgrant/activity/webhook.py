"""The API server's audit Events as its webhook backend posts them, kept where the file source reads.

kube-apiserver with `--audit-webhook-config-file=<kubeconfig>` POSTs `audit.k8s.io/v1` `EventList`s
(JSON) to the server that kubeconfig names: in batches (`--audit-webhook-mode=batch`, the default, up
to `--audit-webhook-batch-max-size` events) or one request at a time (`blocking`), and retries an
answer other than 2xx with backoff. A control plane that writes no log file this operator can read
can post here instead.

`AuditWebhookReceiver` appends every posted Event as one JSON line to a file, the same lines
`--audit-log-path` writes, rotating it as `--audit-log-maxsize` does (`audit-<time>.log` next to it),
so `AuditLogFiles(path)` reads what was received exactly as it reads kube-apiserver's own log: one
source interface, one set of attribution rules. A batch is answered 200 only once it is flushed and
fsynced, so a batch lost to a crash is posted again by the API server, not dropped.

Whoever can post here can write calls into the record, so the receiver requires the API server to
prove itself with what its webhook kubeconfig's user holds: a bearer token (`token:`), compared in
constant time, or a client certificate (`client-certificate:`) verified by TLS against a CA; and it
refuses to listen beyond loopback without TLS (the token would travel in clear text).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from jitgrant.httpbody import BodyError, BodyTooLarge, read_body

#: kube-apiserver's default batch is 400 Events; at level RequestResponse each can carry two objects.
MAX_BODY_BYTES = 64 * 2**20
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _status(code: int, message: str) -> web.Response:
    """A `meta/v1` Status, what the API server logs when its webhook answers an error."""
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return web.json_response(body, status=code)


class AuditWebhookReceiver:
    """Appends posted EventLists to `path` (one Event per line), rotating at `max_bytes`."""

    def __init__(
        self,
        path: Path,
        *,
        token: str | None = None,
        max_bytes: int = 100 * 2**20,
        max_backups: int = 10,
    ) -> None:
        self.path = Path(path)
        self.token = token
        self.max_bytes, self.max_backups = max_bytes, max_backups
        self.batches = 0
        self.events = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        # The webhook kubeconfig's server URL names the path; any path here receives.
        app.router.add_post("/{tail:.*}", self.receive)
        return app

    async def receive(self, request: web.Request) -> web.Response:
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return _status(401, "a bearer token is required: the one in the audit webhook kubeconfig")
        try:
            raw = await read_body(
                request.content,
                limit=MAX_BODY_BYTES,
                what="the audit event batch",
                declared=request.content_length,
            )
        except BodyTooLarge as exc:
            return _status(413, f"{exc}; lower the API server's --audit-webhook-batch-max-size")
        except BodyError as exc:
            return _status(400, str(exc))
        try:
            body = json.loads(raw)
        except ValueError:
            return _status(400, "the body is not JSON (expected an audit.k8s.io/v1 EventList)")
        if (
            not isinstance(body, dict)
            or body.get("kind") != "EventList"
            or not str(body.get("apiVersion", "")).startswith("audit.k8s.io/")
            or not isinstance(body.get("items") or [], list)
        ):
            return _status(400, "expected an audit.k8s.io EventList (kind EventList, items: Events)")
        # A real API server's list items carry no kind/apiVersion; the log file's lines (and parse_event) do.
        lines = [
            json.dumps({"kind": "Event", "apiVersion": body["apiVersion"], **item}, separators=(",", ":"))
            for item in body.get("items") or []
            if isinstance(item, dict)
        ]
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as exc:
            # 503: the API server keeps the batch and posts it again after its backoff.
            return _status(503, f"cannot write the audit log {self.path}: {exc}")
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})

    def _append(self, lines: list[str]) -> None:
        data = "".join(f"{line}\n" for line in lines).encode()
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with self.path.open("ab") as log:
                log.write(data)
                log.flush()
                os.fsync(log.fileno())
            self.batches += 1
            self.events += len(lines)

    def _rotate(self) -> None:
        """As kube-apiserver's log rotation names them: `<stem>-2025-03-01T12-00-00.000<suffix>`."""
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H-%M-%S.") + f"{now.microsecond // 1000:03d}"
        target = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        self.path.rename(target)
        rotated = sorted(
            (p for p in self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}") if p.is_file()),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        for old in rotated[: max(len(rotated) - self.max_backups, 0)]:
            old.unlink(missing_ok=True)


def tls_context(cert_file: Path, key_file: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """HTTPS with the receiver's certificate; with `client_ca`, only clients holding a certificate it
    signed (the webhook kubeconfig's `client-certificate`) get through the handshake."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert_file), str(key_file))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start(
    receiver: AuditWebhookReceiver, *, host: str, port: int, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Listen; returns the runner (`await runner.cleanup()` stops it) and the port bound.

    Refuses (ValueError) a receiver nobody has to prove anything to, and a bearer token in clear text
    beyond loopback.
    """
    client_certs = tls is not None and tls.verify_mode == ssl.CERT_REQUIRED
    if receiver.token is None and not client_certs:
        raise ValueError(
            "the audit webhook receiver needs the API server to authenticate: a bearer token, or TLS "
            "with client certificates verified against a CA; otherwise anyone who reaches it could "
            "write calls into the record"
        )
    if tls is None and host not in LOOPBACK:
        raise ValueError(f"listening on {host} without TLS would carry the bearer token in clear text")
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: Any = runner.addresses[0]
    return runner, int(bound[1])
