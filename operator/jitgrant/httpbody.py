"""Reading an HTTP body whole, up to a limit, whatever the chunking: the one helper for it.

`StreamReader.read(n)` (aiohttp) and a socket's `read(n)` return as soon as *some* bytes have arrived:
a 1,864-byte discovery document sent in two TLS records came back as its first 1,000 bytes, and the
JSON parser then blamed the identity provider. Every body the project reads goes through here:
read until the end of the body or until one byte past the limit, refuse a body over the limit with
its size, and report a body the peer cut off with the number of bytes that did arrive.

The Kubernetes client (urllib3, `preload_content=True`, `enforce_content_length`) and boto3 (STS,
CloudWatch) read whole bodies themselves and check them against Content-Length; they do not come here.
"""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp

_PIECE = 64 * 1024


class BodyError(Exception):
    """A body could not be read whole; the message names what was read and why."""


class BodyTooLarge(BodyError):
    def __init__(self, what: str, *, limit: int, size: int | None) -> None:
        self.limit = limit
        self.size = size  # the declared Content-Length, when the peer sent one
        told = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
        super().__init__(f"{what} is {told}; at most {limit:,} are accepted")


class BodyCutOff(BodyError):
    def __init__(self, what: str, *, received: int, declared: int | None, cause: str = "") -> None:
        self.received = received
        self.declared = declared
        of = f" of {declared:,}" if declared is not None else ""
        why = f" ({cause})" if cause else ""
        super().__init__(f"{what} was cut off after {received:,}{of} bytes{why}")


def _declared(length: int | None, *, what: str, limit: int) -> int | None:
    if length is not None and length > limit:
        raise BodyTooLarge(what, limit=limit, size=length)
    return length


async def read_body(
    stream: aiohttp.StreamReader, *, limit: int, what: str, declared: int | None = None
) -> bytes:
    """The whole body from an aiohttp stream (a client response's `.content`, or a server request's).

    `declared` is the Content-Length, if any: a body declared over the limit is refused before any of
    it is read. `what` names the body in messages ("the identity provider's discovery document").
    """
    # Imported here: the notifier (and with it `jitgrant --help`) reads bodies with read_body_sync only.
    import aiohttp

    declared = _declared(declared, what=what, limit=limit)
    pieces: list[bytes] = []
    received = 0
    while True:
        try:
            piece = await stream.read(min(_PIECE, limit + 1 - received))
        except aiohttp.ClientPayloadError as error:  # the byte counts say all its message says
            raise BodyCutOff(what, received=received, declared=declared) from error
        except (ConnectionError, EOFError) as error:
            raise BodyCutOff(what, received=received, declared=declared, cause=_cause(error)) from error
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
        if received > limit:
            raise BodyTooLarge(what, limit=limit, size=declared)
    if declared is not None and received < declared:
        raise BodyCutOff(what, received=received, declared=declared)
    return b"".join(pieces)


class _Readable(Protocol):
    def read(self, amt: int, /) -> bytes: ...


def read_body_sync(stream: _Readable, *, limit: int, what: str, declared: int | None = None) -> bytes:
    """`read_body` for a blocking file-like body (`http.client.HTTPResponse`, urllib's responses)."""
    declared = _declared(declared, what=what, limit=limit)
    pieces: list[bytes] = []
    received = 0
    while True:
        try:
            piece = stream.read(min(_PIECE, limit + 1 - received))
        except http.client.IncompleteRead as error:
            received += len(error.partial)
            raise BodyCutOff(what, received=received, declared=declared) from error
        except (ConnectionError, http.client.HTTPException) as error:
            raise BodyCutOff(what, received=received, declared=declared, cause=_cause(error)) from error
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
        if received > limit:
            raise BodyTooLarge(what, limit=limit, size=declared)
    if declared is not None and received < declared:
        raise BodyCutOff(what, received=received, declared=declared)
    return b"".join(pieces)


def _cause(error: BaseException) -> str:
    # aiohttp's payload errors nest the parser's message; the first line of it is enough.
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
