"""The on-disk spool: entries not yet delivered, one queue per sink, and the chain's head.

Layout under the spool directory::

    head.json                 {"seq": N, "hash": "..."}: the last record known delivered or spooled
    queues/<sink>/<key>.json  one file per entry that sink has not accepted yet (hard links: one copy)
    tmp/                      files being written; anything left here after a crash is discarded

An entry counts as spooled once its file is fsynced and linked into every queue and those
directories are fsynced: then it survives a crash or a restart. `head.json` is only rewritten when
entries leave the spool, because until then the highest queued record *is* the head.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from jitgrant.audit.chain import ChainHead
from jitgrant.audit.sinks.base import Entry

_KEY = re.compile(r"^[0-9]{20}-(a|b-[0-9]{20})$")


class Spool:
    """Synchronous file operations; the trail runs them in a worker thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._head_path = self.directory / "head.json"
        self._queues = self.directory / "queues"
        self._tmp = self.directory / "tmp"
        # Sink workers save the head from their own threads; it only ever moves forward.
        self._head_lock = threading.Lock()
        self._saved_head_seq = -1

    def open(self, sink_names: list[str]) -> None:
        for path in (self.directory, self._queues, self._tmp):
            path.mkdir(parents=True, exist_ok=True)
        for name in sink_names:
            (self._queues / name).mkdir(exist_ok=True)
        for leftover in self._tmp.iterdir():
            leftover.unlink()

    def queued(self, sink_name: str) -> list[Entry]:
        """Entries the sink has not accepted, oldest first."""
        queue = self._queues / sink_name
        entries = []
        for path in sorted(queue.iterdir()):
            if path.suffix == ".json" and _KEY.match(path.stem):
                entries.append(Entry.parse(path.read_bytes()))
        return entries

    def orphaned_queues(self, sink_names: list[str]) -> list[str]:
        """Queues of sinks no longer configured that still hold entries."""
        return sorted(
            path.name
            for path in self._queues.iterdir()
            if path.is_dir() and path.name not in sink_names and any(path.iterdir())
        )

    def head(self) -> ChainHead:
        """The chain's head: the greater of head.json and the highest record still queued."""
        head = ChainHead()
        if self._head_path.exists():
            raw = json.loads(self._head_path.read_text())
            head = ChainHead(seq=int(raw["seq"]), hash=str(raw["hash"]))
        for queue in self._queues.iterdir():
            for path in sorted(queue.glob("*-a.json"), reverse=True)[:1]:
                raw = json.loads(path.read_bytes())
                if raw["seq"] > head.seq:
                    head = ChainHead(seq=int(raw["seq"]), hash=str(raw["hash"]))
        return head

    def put(self, entry: Entry, sink_names: list[str]) -> None:
        """Durably queues the entry for every sink, or raises OSError and leaves no trace."""
        tmp = self._tmp / f"{entry.key}.json"
        self._write_synced(tmp, entry.line)
        linked: list[Path] = []
        try:
            for name in sink_names:
                target = self._queues / name / f"{entry.key}.json"
                os.link(tmp, target)
                linked.append(target)
            for name in sink_names:
                _fsync_dir(self._queues / name)
        except OSError:
            for path in linked:
                path.unlink(missing_ok=True)
            raise
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, sink_name: str, entries: list[Entry], *, head: ChainHead | None) -> None:
        """Drops delivered entries; first records `head` if they carried the newest record."""
        if head is not None:
            self.write_head(head)
        for entry in entries:
            (self._queues / sink_name / f"{entry.key}.json").unlink(missing_ok=True)

    def write_head(self, head: ChainHead) -> None:
        with self._head_lock:
            if head.seq <= self._saved_head_seq:
                return
            tmp = self._tmp / "head.json"
            self._write_synced(tmp, json.dumps({"seq": head.seq, "hash": head.hash}).encode())
            os.replace(tmp, self._head_path)
            _fsync_dir(self.directory)
            self._saved_head_seq = head.seq

    def persisted_head_seq(self) -> int:
        seq = int(json.loads(self._head_path.read_text())["seq"]) if self._head_path.exists() else 0
        self._saved_head_seq = seq
        return seq

    @staticmethod
    def _write_synced(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
