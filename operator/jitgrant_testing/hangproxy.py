"""A TLS-terminating proxy in front of target API servers, each of which can go dark in two ways.

- `dark`: a new connection is accepted by the kernel and never answered, not even the TLS
  handshake (a dead network path; `DarkableProxy` does the same without terminating TLS).
- `stall`: the TLS handshake completes (the client's connect succeeds, its certificate checks pass)
  and then nothing: the request is read and never answered. Only a read timeout cuts such a call;
  a connect timeout does not (issue 30: other clusters' expiries were 17.7 s late).

Connections already open when a cluster goes dark hold their bytes too. The proxy presents its own
certificate (a CA of its own per proxied cluster, given to the operator as that cluster's CA) and
verifies the real server's with the server's CA, so TLS is never switched off on either side. All
proxied clusters share one event loop in one thread: a fleet of 100 costs one thread, not 200 per
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from embedkube.tls import make_certificates


class Mode(StrEnum):
    LIGHT = "light"
    DARK = "dark"
    STALL = "stall"


@dataclass
class ProxiedCluster:
    """One API server behind the proxy: set `mode` from any thread."""

    upstream: str
    upstream_ca_pem: bytes = field(repr=False)
    mode: Mode = Mode.LIGHT
    url: str = ""
    ca_pem: bytes = field(default=b"", repr=False)
    connections: int = 0  # accepted so far


class HangProxy:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jitgrant-hangproxy", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.clusters: dict[str, ProxiedCluster] = {}

    def add(self, key: str, *, upstream: str, upstream_ca_pem: bytes) -> ProxiedCluster:
        """Proxy `upstream` (an https URL); the returned cluster's `url` and `ca_pem` are what the
        operator is to use."""
        cluster = ProxiedCluster(upstream=upstream, upstream_ca_pem=upstream_ca_pem)
        bundle = make_certificates(("127.0.0.1", "localhost"))
        server_context = bundle.server_context()
        client_context = ssl.create_default_context(cadata=upstream_ca_pem.decode())

        async def start() -> asyncio.Server:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await self._handle(cluster, server_context, client_context, reader, writer)

            return await asyncio.start_server(handle, "127.0.0.1", 0)

        server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        cluster.url, cluster.ca_pem = f"https://127.0.0.1:{port}", bundle.ca_pem
        self.clusters[key] = cluster
        return cluster

    async def _handle(
        self,
        cluster: ProxiedCluster,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        cluster.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # the loop keeps only weak references to tasks
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if cluster.mode is Mode.DARK:
                await _drain(reader)  # no handshake: silence until the client gives up
                return
            await writer.start_tls(server_context)
            if cluster.mode is Mode.STALL:
                await _drain(reader)  # the request is read, never answered
                return
            target = urlsplit(cluster.upstream)
            upstream_reader, upstream_writer = await asyncio.open_connection(
                target.hostname, target.port, ssl=client_context
            )
            pumps = [
                asyncio.create_task(self._pump(cluster, reader, upstream_writer)),
                asyncio.create_task(self._pump(cluster, upstream_reader, writer)),
            ]
            try:
                # Either side closing closes both: a client must never write into a connection the
                # server already closed (its request would wait out the read timeout).
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client gave up, or the proxy is closing
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            for stream in (writer, upstream_writer):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    async def _pump(
        self, cluster: ProxiedCluster, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        while data := await source.read(65536):
            while cluster.mode is not Mode.LIGHT:  # noqa: ASYNC110 - set from other threads
                await asyncio.sleep(0.05)  # gone dark mid-connection: hold the bytes
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            with contextlib.suppress(OSError):
                sink.write_eof()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0.05)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass
