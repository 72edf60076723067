"""Bodies are read whole, whatever the chunking, and a body cut off or too big is named as such.

Every test runs against a real local server (`RawHTTPServer`) writing each body in pieces that each
go out on their own (1 byte, 1,000 bytes: each its own TLS record), or stopping half way. On the old
adapter (one `response.content.read(limit)`) the 1-byte fetches failed nearly every time with
"did not return JSON"; Hydra's 1,864-byte discovery document in two records failed 17 of 40.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from jitgrant.activity.webhook import MAX_BODY_BYTES, AuditWebhookReceiver
from jitgrant.client._api import Connection, Tls
from jitgrant.client.errors import ApiUnreachable
from jitgrant.httpbody import BodyCutOff, BodyTooLarge, read_body, read_body_sync
from jitgrant.identity.jwks import MAX_DOCUMENT_BYTES, JWKSCache, JWKSError
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant.models import OIDCRequester
from jitgrant.notify.config import NotifierConfig, NotifyEvent
from jitgrant.notify.dispatch import Notifier
from jitgrant.notify.messages import Notice
from jitgrant_testing.rawhttp import RawHTTPServer, Route
from jitgrant_testing.rawissuer import KID, raw_issuer

FETCHES = 40


async def _fetch_many(directory: Path, **behaviour: object) -> tuple[int, list[str]]:
    """Fetch discovery + JWKS `FETCHES` times from a fresh cache each time; (successes, errors)."""
    async with raw_issuer(directory, **behaviour) as issuer:
        ok, errors = 0, []
        for _ in range(FETCHES):
            keys = JWKSCache(ssl_context=issuer.server.ssl_context())
            try:
                jwk = await keys.key(issuer.url, KID)
            except JWKSError as error:
                errors.append(str(error))
                continue
            ok += jwk["kid"] == KID
        return ok, errors


@pytest.mark.parametrize("piece", [1, 1000], ids=["1-byte-pieces", "1000-byte-pieces"])
async def test_40_of_40_fetches_succeed_whatever_the_pieces(tmp_path: Path, piece: int) -> None:
    ok, errors = await _fetch_many(tmp_path, piece=piece)
    print(f"\n{ok} of {FETCHES} discovery+JWKS fetches succeeded over TLS in {piece}-byte pieces")
    assert errors == []
    assert ok == FETCHES


async def test_40_of_40_fetches_succeed_with_a_chunked_body_in_1_byte_chunks(tmp_path: Path) -> None:
    ok, errors = await _fetch_many(tmp_path, piece=1, chunked=True)
    print(f"\n{ok} of {FETCHES} fetches succeeded, Transfer-Encoding: chunked, 1-byte chunks")
    assert (ok, errors) == (FETCHES, [])


async def test_a_token_verifies_end_to_end_over_1_byte_pieces(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, piece=1) as issuer:
        verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.server.ssl_context()))
        config = OIDCRequester(issuer=issuer.url, audience="jitgrant", subjects=("agent-1",))
        identity = await verifier.verify(issuer.mint(), issuer=config)
        assert identity.subject == "agent-1"


async def test_a_discovery_document_cut_off_half_way_is_named_as_such(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, piece=100, cut_after=1000) as issuer:
        keys = JWKSCache(ssl_context=issuer.server.ssl_context())
        with pytest.raises(JWKSError) as refused:
            await keys.key(issuer.url, KID)
    size = issuer.discovery_bytes
    assert str(refused.value).startswith(
        f"the discovery document of identity provider {issuer.url} was cut off after 1,000 of {size:,} bytes"
    ), refused.value
    assert "JSON" not in str(refused.value)


async def test_a_chunked_body_cut_off_half_way_is_named_as_such(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, piece=100, cut_after=1000, chunked=True) as issuer:
        keys = JWKSCache(ssl_context=issuer.server.ssl_context())
        with pytest.raises(JWKSError) as refused:
            await keys.key(issuer.url, KID)
    assert str(refused.value).startswith(
        f"the discovery document of identity provider {issuer.url} was cut off after 1,000 bytes"
    ), refused.value


async def test_a_body_over_the_limit_is_refused_with_its_size(tmp_path: Path) -> None:
    big = b" " * (MAX_DOCUMENT_BYTES + 10) + b"{}"
    async with raw_issuer(tmp_path) as issuer:
        issuer.server.routes["/.well-known/openid-configuration"] = Route(big)
        with pytest.raises(JWKSError) as refused:
            await JWKSCache(ssl_context=issuer.server.ssl_context()).key(issuer.url, KID)
    assert str(refused.value) == (
        f"the discovery document of identity provider {issuer.url} is {len(big):,} bytes; "
        f"at most {MAX_DOCUMENT_BYTES:,} are accepted"
    )


async def test_a_body_over_the_limit_without_a_length_is_refused_after_limit_plus_one(
    tmp_path: Path,
) -> None:
    big = b" " * (MAX_DOCUMENT_BYTES + 10) + b"{}"
    async with raw_issuer(tmp_path, content_length=False, piece=1000) as issuer:
        issuer.server.routes["/.well-known/openid-configuration"] = Route(big)
        with pytest.raises(JWKSError) as refused:
            await JWKSCache(ssl_context=issuer.server.ssl_context()).key(issuer.url, KID)
    assert str(refused.value).endswith(
        f"is more than {MAX_DOCUMENT_BYTES:,} bytes; at most {MAX_DOCUMENT_BYTES:,} are accepted"
    )


async def test_what_is_not_json_says_so_with_its_size(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, piece=1) as issuer:
        issuer.server.routes["/.well-known/openid-configuration"] = Route(b"<html>login</html>")
        with pytest.raises(JWKSError) as refused:
            await JWKSCache(ssl_context=issuer.server.ssl_context()).key(issuer.url, KID)
    assert "is not JSON (18 bytes" in str(refused.value)


# --- the helper itself, for the other readers (aiohttp client and server, http.client) -------------


async def _serve(tmp_path: Path, body: bytes, **behaviour: object) -> RawHTTPServer:
    server = RawHTTPServer(tmp_path, tls_enabled=False, **behaviour)  # type: ignore[arg-type]
    server.routes["/body"] = Route(body)
    await server.start()
    return server


@pytest.mark.parametrize("piece", [1, 1000])
async def test_read_body_on_an_aiohttp_response(tmp_path: Path, piece: int) -> None:
    body = json.dumps({"x": "y" * 5000}).encode()
    server = await _serve(tmp_path, body, piece=piece)
    try:
        async with aiohttp.ClientSession() as session, session.get(server.url + "/body") as response:
            got = await read_body(
                response.content, limit=10_000, what="the body", declared=response.content_length
            )
    finally:
        await server.stop()
    assert got == body


@pytest.mark.parametrize("piece", [1, 1000])
async def test_read_body_sync_on_http_client(tmp_path: Path, piece: int) -> None:
    body = json.dumps({"x": "y" * 5000}).encode()
    server = await _serve(tmp_path, body, piece=piece)
    host, port = server.url.removeprefix("http://").split(":")

    def fetch() -> bytes:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/body")
            response = connection.getresponse()
            return read_body_sync(response, limit=10_000, what="the body", declared=response.length)
        finally:
            connection.close()

    try:
        assert await asyncio.to_thread(fetch) == body
    finally:
        await server.stop()


async def test_read_body_sync_reports_a_cut_off_body(tmp_path: Path) -> None:
    body = b"x" * 2000
    server = await _serve(tmp_path, body, piece=10, cut_after=1000)
    host, port = server.url.removeprefix("http://").split(":")

    def fetch() -> bytes:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/body")
            response = connection.getresponse()
            return read_body_sync(response, limit=10_000, what="the reply", declared=response.length)
        finally:
            connection.close()

    try:
        with pytest.raises(BodyCutOff) as cut:
            await asyncio.to_thread(fetch)
    finally:
        await server.stop()
    assert str(cut.value) == "the reply was cut off after 1,000 of 2,000 bytes"


async def test_read_body_refuses_past_the_limit(tmp_path: Path) -> None:
    server = await _serve(tmp_path, b"x" * 5000, piece=1000, content_length=False)
    try:
        async with aiohttp.ClientSession() as session, session.get(server.url + "/body") as response:
            with pytest.raises(BodyTooLarge) as big:
                await read_body(response.content, limit=4096, what="the body")
    finally:
        await server.stop()
    assert str(big.value) == "the body is more than 4,096 bytes; at most 4,096 are accepted"


# --- every other reader goes through the helper: the agent's client, the audit receiver, notices ---


async def test_the_agent_client_reads_an_answer_sent_in_1_byte_pieces(tmp_path: Path) -> None:
    answer = json.dumps({"kind": "AccessRequest", "metadata": {"name": "r"}, "pad": "x" * 3000}).encode()
    server = RawHTTPServer(tmp_path, piece=1)
    server.routes["/apis/x"] = Route(answer)
    await server.start()
    connection = Connection(
        host=server.url,
        tls=Tls(ca_file=str(server.tls.cafile) if server.tls else None),
        authorization=lambda: None,
    )
    try:
        result = await connection.call("GET", "/apis/x")
    finally:
        await connection.close()
        await server.stop()
    assert result.body["metadata"] == {"name": "r"}


async def test_the_agent_client_says_when_an_answer_was_cut_off(tmp_path: Path) -> None:
    server = RawHTTPServer(tmp_path, piece=100, cut_after=500)
    server.routes["/apis/x"] = Route(json.dumps({"pad": "x" * 3000}).encode())
    await server.start()
    connection = Connection(
        host=server.url,
        tls=Tls(ca_file=str(server.tls.cafile) if server.tls else None),
        authorization=lambda: None,
    )
    try:
        with pytest.raises(ApiUnreachable) as cut:
            await connection.call("GET", "/apis/x")
    finally:
        await connection.close()
        await server.stop()
    assert str(cut.value).endswith(
        "the API server's answer to GET /apis/x was cut off after 500 of 3,011 bytes"
    )


async def _post_raw(port: int, head: bytes, pieces: list[bytes], *, close_early: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0)
    if close_early:
        writer.close()
        return b""
    answer = await reader.read()
    writer.close()
    return answer


async def test_the_audit_receiver_reads_a_batch_sent_in_1_byte_pieces_and_refuses_one_cut_off(
    tmp_path: Path,
) -> None:
    receiver = AuditWebhookReceiver(tmp_path / "audit.log")
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    batch = json.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [{"auditID": "a", "verb": "get"}]}
    ).encode()
    head = (
        f"POST /audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(batch)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        answer = await _post_raw(port, head, [batch[i : i + 1] for i in range(len(batch))])
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert receiver.events == 1
        await _post_raw(port, head, [batch[: len(batch) // 2]], close_early=True)
        await asyncio.sleep(0.2)
        assert receiver.events == 1  # half a batch is never appended
        big = b'{"kind": "EventList", "items": [' + b" " * (MAX_BODY_BYTES + 1)
        chunked = (
            b"POST /audit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        piece = 1 << 20
        pieces = [
            b"%x\r\n%s\r\n" % (len(big[i : i + piece]), big[i : i + piece]) for i in range(0, len(big), piece)
        ]
        answer = await _post_raw(port, chunked, [*pieces, b"0\r\n\r\n"])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert f"the audit event batch is more than {MAX_BODY_BYTES:,} bytes".encode() in answer
    finally:
        await runner.cleanup()


def test_a_notifiers_reply_is_read_whole_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    server = RawHTTPServer(tmp_path, tls_enabled=False, piece=1)
    server.routes["/hook"] = Route(b"invalid_payload: missing text field", status=400)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    notifier = NotifierConfig(name="ops", type="webhook", url=f"{server.url}/hook")
    try:
        with caplog.at_level(logging.WARNING, logger="jitgrant.notify"):
            notify = Notifier((notifier,), registry=CollectorRegistry())
            try:
                notify._post(notifier, _notice())
            finally:
                notify.close()
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert "answered 400" in caplog.text
    assert "invalid_payload: missing text field" in caplog.text


def _notice() -> Notice:
    return Notice(
        event=NotifyEvent.PENDING,
        namespace="agents",
        name="r-1",
        phase="Pending",
        reason="AwaitingApproval",
        message="",
        requester="agent",
        policy="oncall",
        scope="payments",
        justification="INC-29",
        duration="15m",
        expires_at=None,
    )
