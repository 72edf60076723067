from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto.server import ThreadedMotoServer

from jitgrant.audit import (
    ApproverRecord,
    AuditEvent,
    EventType,
    RequesterRecord,
    ScopeRecord,
    WindowRecord,
)
from jitgrant.audit.chain import ChainHead, StoredLine, canonical_json, link
from jitgrant.audit.checkpoint import CheckpointSigner


@pytest.fixture(scope="session", autouse=True)
def _current_event_loop() -> Iterator[None]:
    # pytest-asyncio <1.4 creates (and never closes) a loop when a sync test runs before an async
    # one, which `filterwarnings = error` turns into a failure (pytest-asyncio#724). Owning the
    # current loop for the session avoids that.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

MakeEvent = Callable[..., AuditEvent]


def make_event(
    type: EventType = EventType.GRANTED,
    *,
    uid: str = "uid-1",
    name: str = "restart-checkout",
    namespace: str = "payments",
    requester: str = "system:serviceaccount:agents:oncall",
    approver: str | None = "alice@example.com",
    cluster: str = "prod-eu",
    at: datetime = T0,
    reason: str | None = None,
) -> AuditEvent:
    approvers = (
        (ApproverRecord(approver=approver, at=at - timedelta(minutes=1), receipt="r-1"),) if approver else ()
    )
    return AuditEvent(
        type=type,
        time=at,
        request_uid=uid,
        request_name=name,
        request_namespace="agents",
        policy="oncall-restart",
        cluster=cluster,
        requester=RequesterRecord(
            username=requester, uid="sa-uid", groups=("agents",), proven_by="kubernetes"
        ),
        scope=ScopeRecord(namespace=namespace, cluster_role="jit-restart-deployments"),
        window=WindowRecord(
            requested_duration_seconds=900,
            activated_at=at if type is EventType.GRANTED else None,
            expires_at=at + timedelta(minutes=15),
            ended_at=at if type in (EventType.EXPIRED, EventType.REVOKED) else None,
        ),
        approvers=approvers,
        decision="allowed",
        reason=reason,
        binding="jit-restart-checkout",
    )


@pytest.fixture
def event() -> MakeEvent:
    return make_event


@dataclass(frozen=True)
class KeyPair:
    signer: CheckpointSigner
    private_pem: Path
    public_pem: Path


@pytest.fixture
def keypair(tmp_path: Path) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private_pem = tmp_path / "signing.pem"
    public_pem = tmp_path / "signing.pub.pem"
    private_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(CheckpointSigner(key), private_pem, public_pem)


def build_trail(
    count: int,
    *,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = 0,
    instance: str = "op-1",
) -> list[dict[str, Any]]:
    """A valid trail as stored: `count` records, a signed checkpoint every `checkpoint_every`."""
    items: list[dict[str, Any]] = []
    head = ChainHead()
    types = list(EventType)
    for index in range(count):
        event = make_event(
            types[index % len(types)], uid=f"uid-{index // 4}", at=T0 + timedelta(seconds=index)
        )
        record = link(event, head=head, instance=instance)
        head = ChainHead(record.seq, record.hash)
        items.append(record.to_wire())
        if signer and checkpoint_every and record.seq % checkpoint_every == 0:
            items.append(signer.sign(instance=instance, head=head, time=event.time).to_wire())
    return items


def as_lines(items: list[dict[str, Any]]) -> list[StoredLine]:
    return [StoredLine(f"line {number}", canonical_json(item)) for number, item in enumerate(items, start=1)]


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(canonical_json(item) + b"\n" for item in items))
    return path


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real AWS API endpoint on 127.0.0.1 (moto in server mode), with throwaway credentials."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            server._server.server_close()  # stop() leaves the socket open


class Receiver:
    """A SIEM stand-in: a real HTTP server on 127.0.0.1 that keeps what it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.down = False
        self.lose_answers = 0  # keep the next N batches but answer 502, as a lost answer would look
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="maintenance")
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        if self.lose_answers:
            self.lose_answers -= 1
            return web.Response(status=502)
        return web.Response(status=204)

    def lines(self) -> list[StoredLine]:
        """Every entry received, in arrival order, as stored bytes."""
        lines = []
        for body in self.bodies:
            for entry in json.loads(body)["entries"]:
                lines.append(StoredLine(f"post {len(lines)}", canonical_json(entry)))
        return lines


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/audit", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/audit"
    try:
        yield state
    finally:
        await runner.cleanup()


async def eventually(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (polls state the trail owns; no event to wait on)
            await asyncio.sleep(0.01)
