from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from jitgrant.audit import AuditConfig, AuditTrail, AuditUnavailable, EventType
from jitgrant.audit.chain import record_hash
from jitgrant.audit.records import GENESIS_HASH

from .conftest import make_event


def file_config(tmp_path: Path, **extra: object) -> AuditConfig:
    return AuditConfig.model_validate(
        {
            "sinks": [{"type": "file", "path": str(tmp_path / "audit.jsonl")}],
            "spoolDir": str(tmp_path / "spool"),
            **extra,
        }
    )


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_records_reach_the_file_sink_in_a_valid_chain(tmp_path: Path) -> None:
    trail = AuditTrail.from_config(file_config(tmp_path), instance="op-1")
    await trail.start()
    granted = await trail.record_before_grant(make_event(EventType.GRANTED))
    expired = await trail.record(make_event(EventType.EXPIRED))
    await trail.close()

    lines = read_lines(tmp_path / "audit.jsonl")
    assert [line["seq"] for line in lines] == [1, 2]
    assert lines[0]["prevHash"] == GENESIS_HASH and lines[1]["prevHash"] == lines[0]["hash"]
    assert all(record_hash(line) == line["hash"] for line in lines)
    assert (granted.seq, expired.seq) == (1, 2)
    assert trail.depth() == 0


async def test_chain_continues_after_a_restart(tmp_path: Path) -> None:
    config = file_config(tmp_path)
    first = AuditTrail.from_config(config, instance="op-1")
    await first.start()
    last = await first.record(make_event())
    await first.close()

    second = AuditTrail.from_config(config, instance="op-1")
    await second.start()
    following = await second.record(make_event(EventType.REVOKED))
    await second.close()
    assert (following.seq, following.prev_hash) == (last.seq + 1, last.hash)


async def test_stdout_sink_prints_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = AuditConfig(sinks=({"type": "stdout"},), spool_dir=tmp_path / "spool")  # type: ignore[arg-type]
    trail = AuditTrail.from_config(config, instance="op-1")
    await trail.start()
    await trail.record_before_grant(make_event())
    await trail.close()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0]["event"]["type"] == "granted"


async def test_recording_before_start_is_an_error(tmp_path: Path) -> None:
    trail = AuditTrail.from_config(file_config(tmp_path), instance="op-1")
    with pytest.raises(RuntimeError):
        await trail.record(make_event())


def test_config_accepts_camel_and_snake_case_and_refuses_inline_secrets(tmp_path: Path) -> None:
    camel = AuditConfig.model_validate(
        {"sinks": [{"type": "webhook", "url": "https://siem", "bearerTokenFile": "/t"}], "spoolDir": "/s"}
    )
    snake = AuditConfig.model_validate(
        {"sinks": [{"type": "webhook", "url": "https://siem", "bearer_token_file": "/t"}], "spool_dir": "/s"}
    )
    assert camel == snake
    with pytest.raises(ValidationError):
        AuditConfig.model_validate(
            {"sinks": [{"type": "webhook", "url": "https://siem", "bearerToken": "x"}], "spoolDir": "/s"}
        )


def test_config_refuses_duplicate_sink_names_and_unknown_types() -> None:
    with pytest.raises(ValidationError, match="unique"):
        AuditConfig.model_validate(
            {"sinks": [{"type": "stdout"}, {"type": "stdout", "name": "stdout-0"}], "spoolDir": "/s"}
        )
    with pytest.raises(ValidationError):
        AuditConfig.model_validate({"sinks": [{"type": "kafka"}], "spoolDir": "/s"})
    with pytest.raises(ValidationError):
        AuditConfig.model_validate({"sinks": [], "spoolDir": "/s"})


async def test_unreadable_spool_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("a file, not a directory")
    trail = AuditTrail.from_config(file_config(tmp_path), instance="op-1")
    with pytest.raises(AuditUnavailable, match="cannot be read"):
        await trail.start()


async def test_records_made_together_share_one_spool_write(tmp_path: Path) -> None:
    # The sink cannot be written (its directory is a file), so every entry stays in the spool.
    (tmp_path / "blocked").write_text("a file, not a directory")
    config = AuditConfig.model_validate(
        {
            "sinks": [{"type": "file", "path": str(tmp_path / "blocked" / "audit.jsonl")}],
            "spoolDir": str(tmp_path / "spool"),
            "retryInitialSeconds": 60,
            "closeTimeoutSeconds": 0,
        }
    )
    trail = AuditTrail.from_config(config, instance="op-1")
    await trail.start()
    records = await asyncio.gather(
        *(trail.record_before_grant(make_event(uid=f"uid-{index}")) for index in range(50))
    )
    assert sorted(record.seq for record in records) == list(range(1, 51))
    # Each caller returned once its batch was written: far fewer files (two fsyncs each) than records.
    batches = sorted((tmp_path / "spool" / "entries").iterdir())
    assert 1 <= len(batches) <= 3, [path.name for path in batches]
    lines = [json.loads(line) for path in batches for line in path.read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 51))
    assert all(record_hash(line) == line["hash"] for line in lines)
    await trail.close()


async def test_a_caller_cancelled_while_its_batch_is_written_leaves_no_gap(tmp_path: Path) -> None:
    trail = AuditTrail.from_config(file_config(tmp_path), instance="op-1")
    await trail.start()
    tasks = [
        asyncio.create_task(trail.record_before_grant(make_event(uid=f"uid-{index}"))) for index in range(20)
    ]
    await asyncio.sleep(0)  # each has linked its record and waits for its batch
    for task in tasks[::2]:
        task.cancel()
    done = await asyncio.gather(*tasks[1::2])
    after = await trail.record(make_event(EventType.EXPIRED))
    await trail.close()

    assert after.seq == 21  # the cancelled callers' records kept their numbers
    lines = read_lines(tmp_path / "audit.jsonl")
    assert [line["seq"] for line in lines] == list(range(1, 22))
    assert all(line["prevHash"] == before["hash"] for before, line in itertools.pairwise(lines))
    assert {record.seq for record in done} <= set(range(1, 21))
