"""The audit webhook receiver: EventLists posted as kube-apiserver's webhook backend posts them, over
HTTPS, read back by the file source and attributed to the grant; posts without the API server's
token or client certificate refused and never written."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jitgrant.activity.attribution import Basis, GrantIdentity, Outcome
from jitgrant.activity.files import AuditLogFiles
from jitgrant.activity.report import read
from jitgrant.activity.webhook import AuditWebhookReceiver, start, tls_context
from jitgrant_testing.tls import WebhookTLS, generate_webhook_tls, issue_client_certificate

from .conftest import AGENT, T0, audit_event

TOKEN = "audit-webhook-token-4c1f"
GRANT = GrantIdentity(
    binding_name="jit-restart-checkout",
    binding_namespace="payments",
    usernames=frozenset({AGENT}),
    start=T0,
    end=T0 + timedelta(minutes=15),
)


def event_list(*events: dict[str, Any]) -> dict[str, Any]:
    """What the webhook backend posts: an EventList, both stages of each call (as it sends them)."""
    items: list[dict[str, Any]] = []
    for event in events:
        # A real kube-apiserver leaves kind and apiVersion off the items (the list carries them).
        event = {k: v for k, v in event.items() if k not in ("kind", "apiVersion")}
        received = {k: v for k, v in event.items() if k not in ("responseStatus", "annotations")}
        items += [{**received, "stage": "RequestReceived"}, event]
    return {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}


@dataclass
class Running:
    receiver: AuditWebhookReceiver
    url: str
    tls: WebhookTLS


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    material = generate_webhook_tls(tmp_path / "tls", hosts=["127.0.0.1"])
    receiver = AuditWebhookReceiver(tmp_path / "audit" / "audit.log", token=TOKEN, max_bytes=4096)
    context = tls_context(material.certfile, material.pkeyfile)
    runner, port = await start(receiver, host="127.0.0.1", port=0, tls=context)
    try:
        yield Running(receiver, f"https://127.0.0.1:{port}/audit", material)
    finally:
        await runner.cleanup()


async def post(
    running: Running, body: Any, *, token: str | None = TOKEN, cert: tuple[Path, Path] | None = None
) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(running.tls.cafile))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        session.post(running.url, data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_posted_batches_are_read_and_attributed_like_the_log_file(running: Running) -> None:
    restart = audit_event(audit_id="restart", at=T0 + timedelta(minutes=1))
    refused = audit_event(audit_id="ledger", name="ledger", code=403, at=T0 + timedelta(minutes=2))
    elsewhere = audit_event(audit_id="late", at=T0 + timedelta(hours=2), reason=None)
    assert await post(running, event_list(restart)) == (
        200,
        {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200},
    )
    status, _ = await post(running, event_list(refused, elsewhere))
    assert status == 200 and running.receiver.events == 6

    calls = read(AuditLogFiles(running.receiver.path), GRANT)
    assert [(c.call.audit_id, c.outcome, c.basis) for c in calls] == [
        ("restart", Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON),
        ("ledger", Outcome.REFUSED, Basis.IDENTITY_WINDOW),
    ]


async def test_rotation_keeps_every_batch_readable(running: Running) -> None:
    for minute in range(1, 9):  # each batch about 1.5 kB against max_bytes 4096: rotates
        event = audit_event(audit_id=f"call-{minute}", at=T0 + timedelta(minutes=minute))
        assert (await post(running, event_list(event)))[0] == 200
    rotated = [p for p in running.receiver.path.parent.iterdir() if p != running.receiver.path]
    assert rotated and all(p.name.startswith("audit-") and p.suffix == ".log" for p in rotated)
    calls = read(AuditLogFiles(running.receiver.path), GRANT)
    assert [c.call.audit_id for c in calls] == [f"call-{m}" for m in range(1, 9)]


async def test_a_post_without_the_token_is_refused_and_not_written(running: Running) -> None:
    forged = event_list(audit_event(audit_id="forged", user="system:serviceaccount:agents:scapegoat"))
    for token in (None, "guess", TOKEN + "x"):
        status, body = await post(running, forged, token=token)
        assert status == 401 and "bearer token" in body["message"]
    assert not running.receiver.path.exists()


async def test_what_is_not_an_event_list_is_refused(running: Running) -> None:
    for body in ({"kind": "Event", "apiVersion": "audit.k8s.io/v1"}, [1, 2], {"kind": "EventList"}):
        status, answer = await post(running, body)
        assert status == 400 and "EventList" in answer["message"]
    assert not running.receiver.path.exists()


async def test_client_certificates_instead_of_a_token(tmp_path: Path) -> None:
    material = generate_webhook_tls(tmp_path / "tls", hosts=["127.0.0.1"])
    apiserver = issue_client_certificate(material, tmp_path / "client")
    stranger_ca = generate_webhook_tls(tmp_path / "other", hosts=["127.0.0.1"])
    stranger = issue_client_certificate(stranger_ca, tmp_path / "stranger")
    receiver = AuditWebhookReceiver(tmp_path / "audit.log")
    context = tls_context(material.certfile, material.pkeyfile, client_ca=material.cafile)
    runner, port = await start(receiver, host="127.0.0.1", port=0, tls=context)
    try:
        running = Running(receiver, f"https://127.0.0.1:{port}/", material)
        body = event_list(audit_event(audit_id="by-cert"))
        status, _ = await post(running, body, token=None, cert=(apiserver.certfile, apiserver.pkeyfile))
        assert status == 200
        for cert in (None, (stranger.certfile, stranger.pkeyfile)):
            with pytest.raises(aiohttp.ClientError):
                await post(running, body, token=None, cert=cert)
    finally:
        await runner.cleanup()
    assert receiver.events == 2


async def test_it_will_not_listen_without_a_way_to_tell_the_api_server(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the API server to authenticate"):
        await start(AuditWebhookReceiver(tmp_path / "a.log"), host="127.0.0.1", port=0)
    with pytest.raises(ValueError, match="clear text"):
        await start(AuditWebhookReceiver(tmp_path / "a.log", token=TOKEN), host="0.0.0.0", port=0)
