"""With a public key, `audit verify` calls nothing verified that no signed checkpoint covers, and the
heartbeat exposes a trail cut short: each attack below passed as "OK" before the heartbeat."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jitgrant.audit.chain import ChainHead, VerifyReport, link, record_hash, verify_chain
from jitgrant.audit.checkpoint import CheckpointRef, CheckpointSigner
from jitgrant.audit.records import Checkpoint, CheckpointReason, EventType
from jitgrant.cli.main import main as run

from .conftest import T0, KeyPair, as_lines, make_event, write_jsonl

Items = list[dict[str, Any]]
INTERVAL = 300.0


def heartbeat_trail(
    signer: CheckpointSigner, *, minutes: int = 32, shutdown: bool = True, skip_heartbeats: range = range(0)
) -> Items:
    """What the operator writes: a start checkpoint, a record a minute, a heartbeat every five
    minutes naming the previous checkpoint, and a shutdown checkpoint at the end."""
    items: Items = []
    head, previous = ChainHead(), None

    def checkpoint(at: datetime, reason: CheckpointReason) -> None:
        nonlocal previous
        signed: Checkpoint = signer.sign(
            instance="op-1",
            head=head,
            time=at,
            interval_seconds=INTERVAL,
            previous=previous,
            reason=reason,
        )
        previous = CheckpointRef.of(signed)
        items.append(signed.to_wire())

    checkpoint(T0, "start")
    for minute in range(1, minutes + 1):
        at = T0 + timedelta(minutes=minute)
        record = link(make_event(EventType.GRANTED, uid=f"uid-{minute}", at=at), head=head, instance="op-1")
        head = ChainHead(record.seq, record.hash)
        items.append(record.to_wire())
        if minute % 5 == 0 and minute not in skip_heartbeats:
            checkpoint(at + timedelta(seconds=30), "heartbeat")
    if shutdown:
        checkpoint(T0 + timedelta(minutes=minutes, seconds=45), "shutdown")
    return items


def verify(items: Items, keypair: KeyPair, *, until: datetime) -> VerifyReport:
    keys = {keypair.signer.key_id: keypair.signer.public_key()}
    return verify_chain(as_lines(items), public_keys=keys, until=until)


def kinds(report: VerifyReport) -> set[str]:
    return {finding.kind for finding in report.findings}


END = T0 + timedelta(minutes=32, seconds=45)
A_DAY_LATER = END + timedelta(days=1)


def test_an_untouched_trail_that_shut_down_verifies_any_time_later(keypair: KeyPair) -> None:
    report = verify(heartbeat_trail(keypair.signer), keypair, until=A_DAY_LATER)
    assert report.ok, report.findings
    coverage = report.coverage
    assert coverage.closed and coverage.proven_through_seq == 32 and coverage.interval_seconds == INTERVAL
    assert (coverage.proven_from, coverage.proven_until) == (T0, END)
    assert any("records 1..32 are intact" in statement for statement in coverage.proven)


def test_deleting_the_last_record_and_the_final_checkpoint_is_detected(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer)[:-2]
    assert items[-1]["kind"] == "record" and items[-1]["seq"] == 31  # shutdown and record 32 gone
    report = verify(items, keypair, until=A_DAY_LATER)
    assert kinds(report) == {"stale"}
    assert "the end of the trail is missing" in report.findings[0].detail
    # Still within one interval of the last heartbeat, nothing can tell; that limit is stated.
    live = verify(items, keypair, until=T0 + timedelta(minutes=33))
    assert live.ok and any("not detectable until the next heartbeat" in s for s in live.coverage.unproven)


def test_cutting_the_trail_right_after_a_middle_checkpoint_is_detected(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer)
    middle = next(
        index for index, item in enumerate(items) if item["kind"] == "checkpoint" and item["seq"] == 15
    )
    report = verify(items[: middle + 1], keypair, until=A_DAY_LATER)
    assert kinds(report) == {"stale"} and report.first_bad_seq == 16
    assert report.coverage.proven_through_seq == 15


def test_a_forged_record_with_rehashed_chain_and_no_checkpoints_is_not_verified(keypair: KeyPair) -> None:
    records = [item for item in heartbeat_trail(keypair.signer) if item["kind"] == "record"]
    forged = json.loads(json.dumps(records[9]))
    forged["event"]["requestName"] = "never-happened"
    records.insert(10, forged)
    prev = records[9]["hash"]
    for seq, record in enumerate(records[10:], start=11):
        record["seq"], record["prevHash"] = seq, prev
        record["hash"] = record_hash(record)
        prev = record["hash"]
    assert verify_chain(as_lines(records)).ok  # without the key, nothing can tell
    report = verify(records, keypair, until=A_DAY_LATER)
    assert kinds(report) == {"uncovered"} and report.first_bad_seq == 1
    assert "nothing in records 1..33 is proven" in report.findings[0].detail
    assert report.coverage.proven == ()


def test_records_long_after_the_newest_checkpoint_mean_later_checkpoints_were_removed(
    keypair: KeyPair,
) -> None:
    items = heartbeat_trail(keypair.signer)
    kept = [item for item in items if item["kind"] == "record" or item["seq"] <= 10]
    report = verify(kept, keypair, until=A_DAY_LATER)
    assert "uncovered" in kinds(report) and report.first_bad_seq == 11  # 5 min 30 s + grace after


def test_a_removed_middle_checkpoint_is_named_by_its_successor(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer)
    kept = [item for item in items if not (item["kind"] == "checkpoint" and item["seq"] == 10)]
    report = verify(kept, keypair, until=A_DAY_LATER)
    assert kinds(report) == {"deleted"}
    assert "named by the one of" in report.findings[0].detail


def test_a_heartbeat_gap_with_intact_links_is_downtime_not_tampering(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer, skip_heartbeats=range(10, 25))
    report = verify(items, keypair, until=A_DAY_LATER)
    assert report.ok, report.findings
    assert any("no heartbeat between" in statement for statement in report.coverage.unproven)


def test_a_live_trail_is_ok_with_its_unproven_tail_stated(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer, shutdown=False)
    report = verify(items, keypair, until=T0 + timedelta(minutes=33))
    assert report.ok, report.findings
    assert any("records 31..32 come after the newest checkpoint" in s for s in report.coverage.unproven)


def test_verify_cli_fails_a_cut_trail_against_now_and_says_what_is_proven(
    tmp_path: Path, keypair: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = write_jsonl(tmp_path / "whole.jsonl", heartbeat_trail(keypair.signer))
    cut = write_jsonl(tmp_path / "cut.jsonl", heartbeat_trail(keypair.signer)[:-2])
    key = ["--public-key", str(keypair.public_pem)]

    assert run(["audit", "verify", "--file", str(whole), *key]) == 0  # --until defaults to now
    out = capsys.readouterr().out
    assert "proven: records 1..32 are intact and in order" in out
    assert "NOT proven: nothing after the shutdown checkpoint of 2025-03-01T12:32:45Z" in out

    assert run(["audit", "verify", "--file", str(cut), *key]) == 1
    out = capsys.readouterr().out
    assert "FAILED: first bad sequence number 31" in out and "stale" in out

    argv = ["audit", "verify", "--file", str(cut), *key, "--until", "2025-03-01T12:33:00", "--output", "json"]
    assert run(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["provenThroughSeq"] == 30 and report["closedByShutdown"] is False
    assert any("records 31..31 come after the newest checkpoint" in s for s in report["notProven"])


def test_a_restart_that_lost_its_checkpoint_state_is_a_note_not_a_failure(keypair: KeyPair) -> None:
    items = heartbeat_trail(keypair.signer, minutes=10)
    last = [item for item in items if item["kind"] == "record"][-1]
    restarted = T0 + timedelta(minutes=20)
    head = ChainHead(last["seq"], last["hash"])
    items.append(
        keypair.signer.sign(instance="op-1", head=head, time=restarted, interval_seconds=INTERVAL).to_wire()
    )
    report = verify(items, keypair, until=restarted + timedelta(minutes=1))
    assert report.ok, report.findings
    assert any("names no predecessor" in statement for statement in report.coverage.unproven)
