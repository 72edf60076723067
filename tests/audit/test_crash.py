"""Recorded before granted, with group commit: a process SIGKILLed between writing a batch of
records and making the grants it allows, or anywhere in a burst, leaves no grant without its
durable record, and the trail it leaves verifies (`jitgrant audit verify`).

The child is a real process on the real filesystem under the test's basetemp; the grants are files
it creates after `record_before_grant` returns, as the operator creates RoleBindings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitgrant.audit import AuditConfig, AuditTrail

from .conftest import KeyPair

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, tmp_path: Path, keypair: KeyPair, *, count: int, hold_at: int) -> None:
        self.sink = tmp_path / "audit.jsonl"
        self.config = AuditConfig.model_validate(
            {
                "sinks": [{"type": "file", "path": str(self.sink)}],
                "spoolDir": str(tmp_path / "spool"),
                "signingKeyPath": str(keypair.private_pem),
            }
        )
        self.grants = tmp_path / "grants"
        self.grants.mkdir()
        config_path = tmp_path / "audit.json"
        config_path.write_text(self.config.model_dump_json(by_alias=True))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "operator")]))
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(config_path), str(self.grants), str(count), str(hold_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline().decode()
        if not text:
            self.proc.wait(10)
            assert self.proc.stderr is not None
            raise AssertionError(f"the child ended early: {self.proc.stderr.read().decode()[-2000:]}")
        return text.strip()

    def wait_granted(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.granted()) < count:
            assert time.monotonic() < deadline and self.proc.poll() is None
            time.sleep(0.002)

    def sink_records(self) -> dict[str, int]:
        """What the file sink holds: request uid -> seq."""
        lines = [json.loads(line) for line in self.sink.read_text().splitlines()]
        return {line["event"]["requestUid"]: line["seq"] for line in lines if line["kind"] == "record"}

    def granted(self) -> set[str]:
        return {path.name for path in self.grants.iterdir()}

    def kill(self) -> set[str]:
        """SIGKILL; returns the grants that exist after it (nothing can add one any more)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return self.granted()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def child_factory(tmp_path: Path, keypair: KeyPair) -> Iterator[list[Child]]:
    children: list[Child] = []
    yield children
    for child in children:
        child.stop()


async def recovered(child: Child) -> dict[str, int]:
    """Restarts the trail on what the child left (delivering its spool); request uid -> seq."""
    trail = AuditTrail.from_config(child.config, instance="op-1")
    await trail.start()
    await trail.close()
    return child.sink_records()


def verify(child: Child, keypair: KeyPair) -> str:
    sink = str(child.sink)
    jitgrant = Path(sys.executable).parent / "jitgrant"
    done = subprocess.run(
        [str(jitgrant), "audit", "verify", "--file", sink, "--public-key", str(keypair.public_pem)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_killed_between_the_batch_write_and_its_grants(
    tmp_path: Path, keypair: KeyPair, child_factory: list[Child]
) -> None:
    child = Child(tmp_path, keypair, count=400, hold_at=5)
    child_factory.append(child)
    assert child.line() == "started"
    words = child.line().split()
    assert words[0] == "written", words
    held = {int(seq) for seq in words[1:]}
    assert len(held) > 1  # a batch, not one record: several grants waited on one write
    granted = child.kill()

    records = await recovered(child)
    assert granted, "no grant was made before the held batch: the test would prove nothing"
    assert granted <= set(records), f"granted without a durable record: {sorted(granted - set(records))}"
    # The held batch was durable (it reached the trail after the restart) though none of its grants
    # was made: the kill fell between the two.
    assert held <= set(records.values())
    assert not {uid for uid, seq in records.items() if seq in held} & granted
    assert "OK: no tampering found" in verify(child, keypair)


@pytest.mark.parametrize("grants_before_kill", [1, 60, 200])
async def test_killed_anywhere_in_a_burst(
    tmp_path: Path, keypair: KeyPair, child_factory: list[Child], grants_before_kill: int
) -> None:
    child = Child(tmp_path, keypair, count=2000, hold_at=0)
    child_factory.append(child)
    assert child.line() == "started"
    child.wait_granted(grants_before_kill)
    granted = child.kill()
    assert len(granted) < 2000, "the burst ended before the kill: the test would prove nothing"

    records = await recovered(child)
    assert granted <= set(records), f"granted without a durable record: {sorted(granted - set(records))}"
    assert "OK: no tampering found" in verify(child, keypair)
