"""A small HTTP(S) server that answers the way real networks do, for the body and timeout tests.

aiohttp's test server hands each body to the kernel in one piece; real identity providers do not
(Hydra's 1,864-byte discovery document often arrives in two TLS records). This one writes every
body in pieces of `piece` bytes, each flushed on its own (so each is its own TLS record), and can:
stop half way (`cut_after` body bytes, then close), send a chunked body, send no Content-Length,
complete TLS and then never answer (`stall`), or accept TCP and never speak TLS at all (`silent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from jitgrant_testing.tls import WebhookTLS, client_ssl_context, generate_webhook_tls


@dataclass
class Route:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawHTTPServer:
    directory: Path
    routes: dict[str, Route] = field(default_factory=dict)
    piece: int | None = None  # body bytes per write (None: all at once)
    cut_after: int | None = None  # close the connection after this many body bytes
    chunked: bool = False  # Transfer-Encoding: chunked, one HTTP chunk per piece
    content_length: bool = True  # send Content-Length (unless chunked)
    stall: bool = False  # complete TLS, read the request, never answer
    silent: bool = False  # accept TCP, never answer (not even the TLS handshake)
    stall_paths: set[str] = field(default_factory=set)  # read the request for these, never answer
    tls_enabled: bool = True
    requests: int = 0
    url: str = ""
    tls: WebhookTLS | None = field(default=None, init=False, repr=False)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False, repr=False)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    async def start(self) -> None:
        context: ssl.SSLContext | None = None
        if self.tls_enabled:
            self.tls = generate_webhook_tls(self.directory, hosts=["127.0.0.1"])
            if not self.silent:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(str(self.tls.certfile), str(self.tls.pkeyfile))
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls_enabled else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    def ssl_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        return client_ssl_context(self.tls)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if self.silent:
                await reader.read()  # until the client gives up
                return
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            path = head.split(b" ", 2)[1].decode()
            # Read the request's body: closing with unread bytes makes the kernel send a reset,
            # which can overtake the answer on its way to the client.
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and int(value.strip() or 0):
                    await reader.readexactly(int(value.strip()))
            if self.stall or path in self.stall_paths:
                await reader.read()
                return
            route = self.routes.get(path, Route(b"not found", status=404))
            await self._answer(writer, route)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.transport.abort()

    async def _answer(self, writer: asyncio.StreamWriter, route: Route) -> None:
        headers = {"Content-Type": "application/json", "Connection": "close", **route.headers}
        if self.chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif self.content_length:
            headers["Content-Length"] = str(len(route.body))
        lines = [f"HTTP/1.1 {route.status} X"] + [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        body = route.body if self.cut_after is None else route.body[: self.cut_after]
        step = self.piece or max(len(body), 1)
        for start in range(0, len(body), step):
            piece = body[start : start + step]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)
            await writer.drain()
            await asyncio.sleep(0)
        if self.cut_after is None and self.chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        if self.cut_after is None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
