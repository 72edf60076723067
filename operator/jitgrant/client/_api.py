"""The few Kubernetes API calls the agent side makes, over aiohttp so a watch can be cancelled at once.

Credentials come from the official client's loaders (kubeconfig with exec plugins and client
certificates, or the pod's ServiceAccount); the calls themselves are plain REST. A pass-through
connection (`with_token`) keeps the server address and CA but authenticates with the caller's own
bearer token only: the client certificate of whoever runs the MCP server is never sent, because the
API server would authenticate that first and the call would act as the server's identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from jitgrant.client import _kubeconfig
from jitgrant.client.errors import ApiRefused, ApiUnreachable, JitgrantError
from jitgrant.client.transport import HttpRequest, HttpResponse, Transport, TransportError
from jitgrant.httpbody import BodyError, read_body, read_body_sync
from jitgrant.models.vocabulary import Reason
from jitgrant.unreachable import unreachable

if TYPE_CHECKING:  # imported when a connection first talks: a read-only CLI call never pays for it
    import aiohttp

T = TypeVar("T")
# The API server ends a watch after timeoutSeconds; the client then resumes from its resourceVersion.
WATCH_SECONDS = 290
_CONNECT_TIMEOUT = 10.0
_READ_TIMEOUT = 30.0
# The largest answer the client reads: an AccessRequest or a page of them, with room to spare.
MAX_RESPONSE_BYTES = 64 * 2**20


@dataclass
class ApiResponse:
    body: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class Tls:
    ca_file: str | None = None
    verify: bool = True
    check_hostname: bool = True
    cert_file: str | None = None
    key_file: str | None = None
    ca_data: str | None = None  # PEM, from certificate-authority-data
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None, cadata=self.ca_data or None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif not self.check_hostname:
            context.check_hostname = False
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or None)
        elif self.cert_data:
            # load_cert_chain reads files only: a private directory that is gone once it is loaded.
            with tempfile.TemporaryDirectory(prefix="jitgrant-tls-") as directory:
                cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
                cert.write_bytes(self.cert_data)
                key.write_bytes(self.key_data or b"")
                context.load_cert_chain(str(cert), str(key) if self.key_data else None)
        return context


@dataclass
class Connection:
    """Where the API server is and how to prove who we are; counts the calls it makes."""

    host: str
    tls: Tls
    authorization: Callable[[], str | None]
    namespace: str = "default"
    # kubectl's --as/--as-group: sent as Impersonate-* headers on every call and watch; the API
    # server checks the caller's `impersonate` permission each time.
    impersonate: Sequence[tuple[str, str]] = ()
    calls: int = 0
    # kubectl's --request-timeout: a bound on each call (not on watches); None waits as long as it takes.
    request_timeout: float | None = None
    # Where exchanges go: a given transport (MockTransport in tests), else aiohttp, made on first use.
    transport: Transport | None = field(default=None, repr=False)
    _default: Transport | None = field(default=None, repr=False)
    # What a connection without a given transport uses: aiohttp. Tests of code that builds its own
    # connections (the CLI) put a MockTransport factory here, the HTTP layer's double.
    transport_factory: ClassVar[Callable[[Tls], Transport]]
    # A command-line call: the standard library's http.client (no aiohttp to import, about a third of
    # a read-only command's time); blocking reads run in a thread, so waits and watches still end.
    blocking: bool = False
    blocking_transport_factory: ClassVar[Callable[[Tls], Transport]]

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_configuration(cls, configuration: Any, *, namespace: str = "default") -> Connection:
        """From a `kubernetes.client.Configuration` (already loaded)."""

        def authorization() -> str | None:
            # auth_settings runs the refresh hook (exec plugins, rotated in-cluster tokens) and knows
            # where this version of the client keeps the token ('BearerToken' or 'authorization').
            value = configuration.auth_settings().get("BearerToken", {}).get("value")
            return str(value) if value else None

        return cls(
            host=configuration.host.rstrip("/"),
            tls=Tls(
                ca_file=configuration.ssl_ca_cert or None,
                verify=bool(configuration.verify_ssl),
                check_hostname=configuration.assert_hostname is not False,
                cert_file=configuration.cert_file or None,
                key_file=configuration.key_file or None,
            ),
            authorization=authorization,
            namespace=namespace,
        )

    @classmethod
    def from_credentials(cls, found: _kubeconfig.Credentials, *, namespace: str | None = None) -> Connection:
        return cls(
            host=found.host,
            tls=Tls(
                ca_file=found.ca_file,
                ca_data=found.ca_data,
                verify=found.verify,
                cert_file=found.cert_file,
                key_file=found.key_file,
                cert_data=found.cert_data,
                key_data=found.key_data,
            ),
            authorization=found.authorization,
            namespace=namespace or found.namespace or "default",
            impersonate=found.impersonate,
        )

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | Path | Sequence[str] | None = None,
        *,
        context: str | None = None,
        namespace: str | None = None,
    ) -> Connection:
        """From a kubeconfig (several files, as a list or joined by os.pathsep, merged as kubectl
        merges them); default $KUBECONFIG, read now, else ~/.kube/config. The kubeconfig user's
        `as`/`as-groups` are sent as Impersonate-* headers, as kubectl does."""
        if path is None:
            path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        paths = (
            [str(p) for p in path]
            if isinstance(path, Sequence) and not isinstance(path, str)
            else [p for p in str(path).split(os.pathsep) if p]
        )
        joined = os.pathsep.join(paths)
        try:
            return cls.from_credentials(
                _kubeconfig.from_kubeconfig(paths, context=context), namespace=namespace
            )
        except _kubeconfig.Unsupported:
            pass  # the official loader below knows it
        except _kubeconfig.KubeconfigError as exc:
            raise JitgrantError(
                f"cannot load kubeconfig {joined}: {exc}", reason=Reason.API_UNREACHABLE
            ) from exc
        return cls._official_kubeconfig(joined, context=context, namespace=namespace)

    @classmethod
    def _official_kubeconfig(cls, joined: str, *, context: str | None, namespace: str | None) -> Connection:
        import kubernetes.client
        import kubernetes.config
        from kubernetes.config.config_exception import ConfigException

        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(
                config_file=joined,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=joined)
            if context:
                active = next((c for c in contexts if c.get("name") == context), active)
        except (ConfigException, OSError) as exc:
            raise JitgrantError(
                f"cannot load kubeconfig {joined}: {exc}",
                reason=Reason.API_UNREACHABLE,
            ) from exc
        default = str(((active or {}).get("context") or {}).get("namespace") or "default")
        return cls.from_configuration(configuration, namespace=namespace or default)

    @classmethod
    def in_cluster(cls, *, namespace: str | None = None) -> Connection:
        try:
            found = _kubeconfig.in_cluster()
        except _kubeconfig.KubeconfigError as exc:
            raise JitgrantError(
                f"not running in a pod with a ServiceAccount token: {exc}", reason=Reason.API_UNREACHABLE
            ) from exc
        return cls.from_credentials(found, namespace=namespace)

    def with_token(self, token: str, *, namespace: str | None = None) -> Connection:
        """The same API server, authenticated only by `token` (the caller's, passed through)."""
        return Connection(
            host=self.host,
            tls=replace(self.tls, cert_file=None, key_file=None),
            authorization=lambda: f"Bearer {token}",
            namespace=namespace or self.namespace,
            request_timeout=self.request_timeout,
            transport=self.transport,
            blocking=self.blocking,
        )

    @classmethod
    def for_transport(cls, transport: Transport, *, namespace: str = "default") -> Connection:
        """A connection whose every exchange goes through `transport` (a MockTransport in tests)."""
        return cls(
            host="https://api.test",
            tls=Tls(),
            authorization=lambda: None,
            namespace=namespace,
            transport=transport,
        )

    # -- calls --------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._default is not None:
            await self._default.aclose()
            self._default = None

    def _transport(self) -> Transport:
        if self.transport is not None:
            return self.transport
        if self._default is None:
            factory = Connection.blocking_transport_factory if self.blocking else Connection.transport_factory
            self._default = factory(self.tls)
        return self._default

    def _headers(self, content_type: str | None = None) -> tuple[tuple[str, str], ...]:
        headers = [("Accept", "application/json")]
        token = self.authorization()
        if token:
            headers.append(("Authorization", token))
        if content_type:
            headers.append(("Content-Type", content_type))
        # One Impersonate-Group line per group, as the API server reads them.
        headers.extend(self.impersonate)
        return tuple(headers)

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> ApiResponse:
        self.calls += 1
        request = HttpRequest(
            method=method,
            url=self.host + path,
            params=tuple((params or {}).items()),
            headers=self._headers(content_type if body is not None else None),
            body=json.dumps(body).encode() if body is not None else None,
            read_timeout=_READ_TIMEOUT,
            total_timeout=self.request_timeout,
        )
        what = f"the API server's answer to {method} {path}"
        try:
            async with asyncio.timeout(self.request_timeout), self._transport().open(request) as response:
                text = _decoded(await response.read(limit=MAX_RESPONSE_BYTES, what=what), response.headers)
                warnings = [_warning_text(v) for k, v in response.headers if k.lower() == "warning"]
                if response.status >= 400:
                    raise refused(response.status, text)
                return ApiResponse(body=json.loads(text) if text else {}, warnings=warnings)
        except BodyError as exc:
            raise ApiUnreachable(str(exc), reason=Reason.API_UNREACHABLE) from exc
        except TransportError as exc:
            raise ApiUnreachable(
                unreachable(self.host, exc.cause or exc), reason=Reason.API_UNREACHABLE
            ) from exc
        except TimeoutError as exc:  # only the bound above: a transport reports its own as TransportError
            raise ApiUnreachable(
                f"the API server at {self.host} did not answer {method} {path} within the request "
                f"timeout of {self.request_timeout:g}s (--request-timeout)",
                reason=Reason.API_UNREACHABLE,
            ) from exc

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """One watch connection's events, until the server ends it; the caller resumes."""
        self.calls += 1
        query = {
            **params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        request = HttpRequest(
            method="GET",
            url=self.host + path,
            params=tuple(query.items()),
            headers=self._headers(),
            read_timeout=WATCH_SECONDS + 30,
        )
        try:
            async with self._transport().open(request) as response:
                if response.status >= 400:
                    what = f"the API server's answer to {path}"
                    text = _decoded(
                        await response.read(limit=MAX_RESPONSE_BYTES, what=what), response.headers
                    )
                    raise refused(response.status, text)
                async for line in response.lines():
                    if line.strip():
                        yield json.loads(line)
        except (TransportError, BodyError) as exc:
            cause = exc.cause if isinstance(exc, TransportError) else exc
            raise ApiUnreachable(
                f"the watch on {self.host} dropped ({cause or type(cause).__name__})",
                reason=Reason.API_UNREACHABLE,
            ) from exc


class AiohttpTransport:
    """The transport Connection uses unless given another: aiohttp, so a watch can be cancelled at
    once; one session per connection, created on first use."""

    def __init__(self, tls: Tls) -> None:
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._tls.context()),
                timeout=aiohttp.ClientTimeout(sock_connect=_CONNECT_TIMEOUT, sock_read=_READ_TIMEOUT),
            )
        return self._session

    @contextlib.asynccontextmanager
    async def open(self, request: HttpRequest) -> AsyncIterator[HttpResponse]:
        import aiohttp
        from multidict import CIMultiDict

        timeout = aiohttp.ClientTimeout(
            total=request.total_timeout, sock_connect=_CONNECT_TIMEOUT, sock_read=request.read_timeout
        )
        try:
            async with self._http().request(
                request.method,
                request.url,
                params=list(request.params),
                data=request.body,
                headers=CIMultiDict(request.headers),
                timeout=timeout,
            ) as response:
                yield _AiohttpResponse(response)
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            raise TransportError(str(exc) or type(exc).__name__, cause=exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = list(response.headers.items())

    async def read(self, *, limit: int, what: str) -> bytes:
        return await read_body(
            self._response.content, limit=limit, what=what, declared=self._response.content_length
        )

    async def lines(self) -> AsyncIterator[bytes]:
        async for line in self._response.content:
            yield line


class StdlibTransport:
    """http.client, one connection per exchange, its blocking calls in a worker thread; cancelling
    a read (Ctrl-C, a timeout) shuts the socket so the thread returns at once."""

    def __init__(self, tls: Tls) -> None:
        self._tls = tls
        self._context: ssl.SSLContext | None = None

    def _connect(self, request: HttpRequest) -> http.client.HTTPConnection:
        parts = urlsplit(request.url)
        timeout = request.read_timeout or _READ_TIMEOUT
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        if self._context is None:
            self._context = self._tls.context()
        return http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=self._context
        )

    @contextlib.asynccontextmanager
    async def open(self, request: HttpRequest) -> AsyncIterator[HttpResponse]:
        connection = self._connect(request)
        parts = urlsplit(request.url)
        target = parts.path + (f"?{urlencode(request.params)}" if request.params else "")

        def exchange() -> http.client.HTTPResponse:
            connection.putrequest(request.method, target, skip_accept_encoding=True)
            for name, value in request.headers:
                connection.putheader(name, value)
            if request.body is not None:
                connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body)
            return connection.getresponse()

        try:
            try:
                response = await _in_thread(connection, exchange)
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(str(exc) or type(exc).__name__, cause=exc) from exc
            yield _StdlibResponse(connection, response)
        finally:
            connection.close()

    async def aclose(self) -> None:
        return None


class _StdlibResponse:
    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection, self._response = connection, response
        self.status = response.status
        self.headers = list(response.getheaders())

    async def read(self, *, limit: int, what: str) -> bytes:
        length = self._response.getheader("Content-Length")
        declared = int(length) if length and length.isdigit() else None
        return await _in_thread(
            self._connection,
            lambda: read_body_sync(self._response, limit=limit, what=what, declared=declared),
        )

    async def lines(self) -> AsyncIterator[bytes]:
        while True:
            try:
                line = await _in_thread(self._connection, self._response.readline)
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(str(exc) or type(exc).__name__, cause=exc) from exc
            if not line:
                return
            yield line


async def _in_thread(connection: http.client.HTTPConnection, call: Callable[[], T]) -> T:
    try:
        return await asyncio.to_thread(call)
    except asyncio.CancelledError:
        # The thread is blocked in a socket read: shutting the socket lets it return now, so the
        # event loop (and Ctrl-C) need not wait for the read timeout.
        if connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
        raise


def _decoded(body: bytes, headers: Sequence[tuple[str, str]]) -> str:
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    _, _, charset = content_type.partition("charset=")
    try:
        return body.decode(charset.split(";")[0].strip() or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"


def refused(status: int, text: str) -> ApiRefused:
    status_reason = ""
    try:
        body = json.loads(text)
        message = str(body.get("message") or text)
        status_reason = str(body.get("reason") or "")
    except (ValueError, AttributeError):
        message = text or f"HTTP {status}"
    if status == 401:
        message = (
            "the API server did not accept your credentials (401 Unauthorized); the token is missing or "
            "expired: refresh it or use another kubeconfig"
        )
    reason = Reason.REQUEST_NOT_FOUND if status == 404 else Reason.API_REFUSED
    return ApiRefused(message, status=status, reason=reason, status_reason=status_reason)


def _warning_text(header: str) -> str:
    """`299 - "text"` -> text (RFC 7234 warn-text; the API server escapes quotes with a backslash)."""
    _, _, rest = header.partition(" - ")
    rest = rest.strip()
    if rest.startswith('"') and rest.endswith('"'):
        rest = rest[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return rest or header


Connection.transport_factory = AiohttpTransport
Connection.blocking_transport_factory = StdlibTransport
