"""A kube-apiserver audit log on disk: the live file, its rotated copies (plain or gzipped), or a
directory of them."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta
from pathlib import Path

import pytest

from jitgrant.activity.sources import AuditLogFiles, SourceError, Window

from .conftest import T0, audit_event, jsonl

WINDOW = Window(start=T0, end=T0 + timedelta(minutes=15))


def touch(path: Path, minutes: float) -> None:
    moment = (T0 + timedelta(minutes=minutes)).timestamp()
    os.utime(path, (moment, moment))


@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    """What --audit-log-path=audit.log with --audit-log-maxsize leaves: two rotations, one gzipped."""
    old = tmp_path / "audit-2025-03-01T12-00-00.000.log.gz"
    old.write_bytes(gzip.compress(jsonl(audit_event(verb="get", audit_id="1", at=T0))))
    touch(old, 2)
    middle = tmp_path / "audit-2025-03-01T12-05-00.000.log"
    middle.write_bytes(jsonl(audit_event(verb="patch", audit_id="2", at=T0 + timedelta(minutes=4))))
    touch(middle, 5)
    live = tmp_path / "audit.log"
    live.write_bytes(jsonl(audit_event(verb="delete", code=403, audit_id="3", at=T0 + timedelta(minutes=6))))
    touch(live, 7)
    ancient = tmp_path / "audit-2025-02-01T00-00-00.000.log"  # rotated long before the grant
    ancient.write_bytes(b"not even read\n")
    touch(ancient, -60 * 24)
    (tmp_path / "unrelated.txt").write_text("x")
    return live


def test_the_live_file_and_its_rotated_copies_are_read_in_order(rotated: Path) -> None:
    calls = list(AuditLogFiles(rotated).calls(WINDOW))
    assert [call.audit_id for call in calls] == ["1", "2", "3"]


def test_a_directory_is_read_the_same_way(rotated: Path) -> None:
    assert [call.verb for call in AuditLogFiles(rotated.parent).calls(WINDOW)] == ["get", "patch", "delete"]


def test_a_missing_log_says_where_kube_apiserver_writes_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="--audit-log-path"):
        list(AuditLogFiles(tmp_path / "nope.log").calls(WINDOW))
