"""Nothing lost, access fails closed: outages, a broken spool, restarts, retried deliveries."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jitgrant.audit import AuditConfig, AuditTrail, AuditUnavailable, EventType
from jitgrant.audit.chain import verify_chain
from jitgrant.audit.checkpoint import checkpoint_hash
from jitgrant.audit.readers import read_file

from .conftest import KeyPair, Receiver, eventually, make_event


def webhook_config(tmp_path: Path, receiver: Receiver, **extra: Any) -> AuditConfig:
    return AuditConfig.model_validate(
        {
            "sinks": [{"type": "webhook", "url": receiver.url}],
            "spoolDir": str(tmp_path / "spool"),
            "retryInitialSeconds": 0.01,
            "retryMaxSeconds": 0.05,
            "acceptanceTimeoutSeconds": 0.3,
            "closeTimeoutSeconds": 0.2,
            **extra,
        }
    )


def break_spool(tmp_path: Path) -> None:
    """Makes the spool unwritable even for root: its scratch directory becomes a plain file."""
    scratch = tmp_path / "spool" / "tmp"
    shutil.rmtree(scratch)
    scratch.write_text("not a directory")


async def timed(coroutine: Any) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await coroutine
    return result, loop.time() - start


async def test_outage_delays_nothing_and_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    trail = AuditTrail.from_config(webhook_config(tmp_path, receiver), instance="op-1")
    await trail.start()
    receiver.down = True
    for index in range(6):
        if index % 2 == 0:
            await trail.record_before_grant(
                make_event(EventType.GRANTED, uid=f"u{index}")
            )  # spooled: durable
        else:
            _, elapsed = await timed(trail.record(make_event(EventType.REVOKED, uid=f"u{index}")))
            assert elapsed < 0.5
    assert trail.depth() == 6
    assert trail.last_errors()["webhook-0"] is not None

    receiver.down = False
    await eventually(lambda: trail.depth() == 0)
    await trail.close()
    report = verify_chain(receiver.lines())
    assert report.ok and (report.first_seq, report.last_seq) == (1, 6)


async def test_grant_refused_when_spool_and_sink_are_both_down(tmp_path: Path, receiver: Receiver) -> None:
    trail = AuditTrail.from_config(webhook_config(tmp_path, receiver), instance="op-1")
    await trail.start()
    await trail.record(make_event(EventType.REQUESTED))
    receiver.down = True
    break_spool(tmp_path)

    with pytest.raises(AuditUnavailable) as refused:
        await trail.record_before_grant(make_event(EventType.GRANTED))
    reason = str(refused.value)
    assert "agents/restart-checkout" in reason and "grant was not issued" in reason
    assert "spool cannot be written" in reason and "webhook-0" in reason and "503" in reason

    # Revocation is never held up, even now: its record waits in memory for the sink.
    _, elapsed = await timed(trail.record(make_event(EventType.REVOKED)))
    assert elapsed < 0.5

    receiver.down = False
    await eventually(lambda: trail.depth() == 0)
    await trail.close()
    report = verify_chain(receiver.lines())
    assert report.ok and report.last_seq == 3  # the refused grant's record is kept, not a gap


async def test_grant_accepted_by_sinks_alone_when_the_spool_is_broken(
    tmp_path: Path, receiver: Receiver
) -> None:
    trail = AuditTrail.from_config(webhook_config(tmp_path, receiver), instance="op-1")
    await trail.start()
    break_spool(tmp_path)
    record = await trail.record_before_grant(make_event(EventType.GRANTED))
    assert record.seq == 1 and trail.depth() == 0
    await trail.close()


async def test_acceptance_by_sinks_requires_delivery(tmp_path: Path, receiver: Receiver) -> None:
    trail = AuditTrail.from_config(webhook_config(tmp_path, receiver, acceptance="sinks"), instance="op-1")
    await trail.start()
    await trail.record_before_grant(make_event(EventType.GRANTED))
    assert len(receiver.lines()) == 1
    receiver.down = True
    with pytest.raises(AuditUnavailable, match=r"not delivered within 0\.3s to webhook-0"):
        await trail.record_before_grant(make_event(EventType.GRANTED, uid="u2"))
    receiver.down = False
    await trail.close()


async def test_spooled_records_are_delivered_after_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    config = webhook_config(tmp_path, receiver)
    receiver.down = True
    first = AuditTrail.from_config(config, instance="op-1")
    await first.start()
    await first.record_before_grant(make_event(EventType.GRANTED))
    await first.record(make_event(EventType.EXPIRED))
    await first.record(make_event(EventType.REQUESTED, uid="u2"))
    await first.close()  # stopped between spooling and delivery
    assert first.depth() == 3 and receiver.lines() == []

    receiver.down = False
    second = AuditTrail.from_config(config, instance="op-1")
    await second.start()
    assert second.depth() == 3
    await eventually(lambda: second.depth() == 0)
    after = await second.record(make_event(EventType.DENIED, uid="u2"))
    await second.close()

    assert after.seq == 4
    report = verify_chain(receiver.lines())
    assert report.ok and (report.records, report.first_seq, report.last_seq) == (4, 1, 4)


async def test_chain_and_checkpoints_continue_across_restarts(tmp_path: Path, keypair: KeyPair) -> None:
    config = AuditConfig.model_validate(
        {
            "sinks": [{"type": "file", "path": str(tmp_path / "audit.jsonl")}],
            "spoolDir": str(tmp_path / "spool"),
            "signingKeyPath": str(keypair.private_pem),
        }
    )
    for run in range(3):
        trail = AuditTrail.from_config(config, instance="op-1")
        await trail.start()
        for index in range(3):
            await trail.record(make_event(uid=f"u{run}-{index}"))
        await trail.close()
    keys = {keypair.signer.key_id: keypair.signer.public_key()}
    report = verify_chain(read_file(tmp_path / "audit.jsonl"), public_keys=keys)
    assert report.ok, report.findings
    # Each run signs where it picked the chain up and where it stopped, naming the one before.
    assert (report.records, report.verified_checkpoints, report.last_checkpoint_seq) == (9, 6, 9)
    assert report.coverage.closed and report.coverage.proven_through_seq == 9


async def test_retried_batches_leave_skippable_repeats(tmp_path: Path, receiver: Receiver) -> None:
    trail = AuditTrail.from_config(webhook_config(tmp_path, receiver), instance="op-1")
    await trail.start()
    receiver.lose_answers = 2
    for index in range(4):
        await trail.record(make_event(uid=f"u{index}"))
    await eventually(lambda: trail.depth() == 0)
    await trail.close()
    report = verify_chain(receiver.lines())
    assert report.ok and report.records == 4 and report.duplicates > 0


async def test_heartbeat_checkpoints_continue_while_idle_each_naming_the_last(
    tmp_path: Path, keypair: KeyPair
) -> None:
    config = AuditConfig.model_validate(
        {
            "sinks": [{"type": "file", "path": str(tmp_path / "audit.jsonl")}],
            "spoolDir": str(tmp_path / "spool"),
            "signingKeyPath": str(keypair.private_pem),
            "checkpointIntervalSeconds": 0.05,
        }
    )
    trail = AuditTrail.from_config(config, instance="op-1")
    await trail.start()
    await trail.record(make_event())

    def checkpoints() -> int:
        return sum(b'"kind":"checkpoint"' in line.data for line in read_file(tmp_path / "audit.jsonl"))

    await eventually(lambda: (tmp_path / "audit.jsonl").exists() and checkpoints() >= 4)
    await trail.close()
    written = [json.loads(line.data) for line in read_file(tmp_path / "audit.jsonl")]
    signed = [item for item in written if item["kind"] == "checkpoint"]
    # Nothing happened after the one record, yet the heartbeat went on: its absence shows a cut.
    assert {item["seq"] for item in signed[1:]} == {1}
    assert signed[0]["reason"] == "start" and signed[-1]["reason"] == "shutdown"
    assert all(item["intervalSeconds"] == 0.05 for item in signed)
    for previous, current in itertools.pairwise(signed):
        assert current["prevCheckpointHash"] == checkpoint_hash(previous)
    keys = {keypair.signer.key_id: keypair.signer.public_key()}
    report = verify_chain(read_file(tmp_path / "audit.jsonl"), public_keys=keys, until=datetime.now(UTC))
    assert report.ok, report.findings
