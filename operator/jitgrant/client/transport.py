"""The seam between the client and HTTP: a `Transport` sends one `HttpRequest` and answers with an
`HttpResponse`, httpx's transport API in miniature.

`Connection` uses aiohttp unless it is given another transport. `MockTransport` (after httpx's) answers
from a function, so client, CLI and MCP tests can run their HTTP exchanges without an API server:
everything above the wire (paths, headers, bodies, Status errors, warnings, watch resumption) runs
as it does against a cluster.

    def api_server(request: HttpRequest) -> MockResponse:
        return MockResponse(200, json={"kind": "SelfSubjectReview", "status": {...}})

    client = Client(AsyncClient(Connection.for_transport(MockTransport(api_server))))
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit


class TransportError(Exception):
    """The exchange failed below HTTP (connection, TLS, timeout, a body cut off); `cause` is the
    original error, for the message that names what to check."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str  # scheme://host[:port]/path, without the query
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    # Seconds to wait for each read (None: the transport's default); a watch waits longer.
    read_timeout: float | None = None
    # Seconds for the whole exchange (kubectl's --request-timeout); None: no bound.
    total_timeout: float | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(self.params)

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class HttpResponse(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Sequence[tuple[str, str]]: ...

    async def read(self, *, limit: int, what: str) -> bytes:
        """The whole body (jitgrant.httpbody's rules: refused over `limit`, a cut-off body named)."""

    def lines(self) -> AsyncIterator[bytes]:
        """The body line by line as it arrives (a watch)."""


class Transport(Protocol):
    def open(self, request: HttpRequest) -> AbstractAsyncContextManager[HttpResponse]:
        """Send the request; the response is readable inside the context."""

    async def aclose(self) -> None: ...


@dataclass
class MockResponse:
    """A canned answer: `json` or `content` for a body, or `stream` for a watch's lines."""

    status: int = 200
    json: Any = None
    content: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    stream: AsyncIterable[bytes] | Iterable[bytes] | None = None

    def __post_init__(self) -> None:
        if self.json is not None:
            self.content = json.dumps(self.json).encode()

    async def read(self, *, limit: int, what: str) -> bytes:
        from jitgrant.httpbody import BodyTooLarge

        if len(self.content) > limit:
            raise BodyTooLarge(what, limit=limit, size=len(self.content))
        return self.content

    async def lines(self) -> AsyncIterator[bytes]:
        source = self.stream if self.stream is not None else self.content.splitlines(keepends=True)
        if isinstance(source, AsyncIterable):
            async for line in source:
                yield line
        else:
            for line in source:
                yield line


Handler = Callable[[HttpRequest], MockResponse | Awaitable[MockResponse]]


@dataclass
class MockTransport:
    """Answers every request with `handler(request)` (a function or a coroutine function); keeps
    the requests it saw, in order, for tests to read."""

    handler: Handler
    requests: list[HttpRequest] = field(default_factory=list)

    @asynccontextmanager
    async def _exchange(self, request: HttpRequest) -> AsyncIterator[HttpResponse]:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        yield answer

    def open(self, request: HttpRequest) -> AbstractAsyncContextManager[HttpResponse]:
        return self._exchange(request)

    async def aclose(self) -> None:
        return None


def watch_event(kind: str, obj: Any) -> bytes:
    """One line of a watch stream, as the API server writes it."""
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"
