"""bench/grants.py's meter: CPU seconds of a process from /proc, and API calls by user counted from
the part of the server's audit log written while it ran."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def grants() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("bench_grants", REPO / "bench" / "grants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_cpu_seconds_follow_a_busy_process_and_not_an_idle_one(grants: ModuleType) -> None:
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\ninput()"
    busy = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while grants.cpu_seconds(busy.pid) < 0.6:
            assert time.monotonic() < deadline, grants.cpu_seconds(busy.pid)
            time.sleep(0.05)
        assert grants.cpu_seconds(idle.pid) < 0.3  # an interpreter's start-up, no more
    finally:
        for proc in (busy, idle):
            proc.communicate(b"\n", timeout=10)


def event(user: str, stage: str = "ResponseComplete") -> str:
    return json.dumps({"kind": "Event", "stage": stage, "verb": "create", "user": {"username": user}})


def test_calls_are_counted_by_user_from_where_the_meter_started(grants: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(event(grants.OPERATOR_USER) + "\n")  # before the part: not counted
    meter = grants.Meter({"bench": os.getpid()}, log).start()
    with log.open("a") as out:
        for user in [grants.OPERATOR_USER] * 5 + [grants.AGENT_USER] * 2 + ["admin"]:
            out.write(event(user) + "\n")
        out.write(event(grants.OPERATOR_USER, stage="ResponseStarted") + "\n")  # a watch's start
    figures = meter.stop(grants=2)
    assert figures["calls_per_grant"] == {"operator": 2.5, "agent": 1.0, "other": 0.5}
    assert set(figures["cpu_s_per_1000"]) == {"bench"}
