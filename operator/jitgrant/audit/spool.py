"""The on-disk spool: entries not yet delivered everywhere, each sink's progress, the chain's head.

Layout under the spool directory::

    head.json              {"seq": N, "hash": "..."}: the chain's head, saved at shutdown
    checkpoint.json        {"hash": "...", "time": "..."}: the last signed checkpoint, which the
                           next one names (saved with each checkpoint, so it survives a restart)
    entries/<key>.json     one file per entry some configured sink has not accepted yet
    cursors/<sink>.json    {"key": "..."}: the last entry that sink accepted (sinks take entries in order)
    tmp/                   files being written; anything left here after a crash is discarded

An entry counts as spooled once its file is fsynced and renamed into `entries/` and that directory
is fsynced: two fsyncs, however many sinks there are. Because every sink accepts entries strictly in
key order, one cursor per sink says what it still lacks. An entry file goes once every configured
sink's cursor has passed it, except the newest record, which stays as the chain's head (so the head
survives a crash without a write per record; `head.json` is written at shutdown as a second copy).

Cursors are replaced atomically but not fsynced: a cursor lost in a crash only means that entries
still spooled are delivered again, as repeats that readers skip, and it saves two fsyncs per batch.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import deque
from datetime import datetime
from pathlib import Path

from jitgrant.audit.checkpoint import CheckpointRef
from jitgrant.audit.records import ChainHead
from jitgrant.audit.sinks.base import Entry

_KEY = re.compile(r"^[0-9]{20}-(a|b-[0-9]{20})$")


class Spool:
    """Synchronous file operations; the trail runs them in worker threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._head_path = self.directory / "head.json"
        self._entries = self.directory / "entries"
        self._cursors_dir = self.directory / "cursors"
        self._tmp = self.directory / "tmp"
        # Sink workers report progress from their own threads.
        self._lock = threading.Lock()
        self._sinks: list[str] = []
        self._cursors: dict[str, str] = {}
        self._keys: deque[str] = deque()  # keys of the entry files, oldest first
        self._head_key = ""  # the newest record's key: its file is kept
        self._saved_head_seq = 0

    def open(self, sink_names: list[str]) -> None:
        for path in (self.directory, self._entries, self._cursors_dir, self._tmp):
            path.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():
            leftover.unlink()
        self._sinks = list(sink_names)
        self._cursors = {
            path.stem: str(json.loads(path.read_text())["key"]) for path in self._cursors_dir.glob("*.json")
        }
        self._keys = deque(
            sorted(path.stem for path in self._entries.glob("*.json") if _KEY.match(path.stem))
        )
        self._head_key = max((key for key in self._keys if key.endswith("-a")), default="")
        if self._head_path.exists():
            self._saved_head_seq = int(json.loads(self._head_path.read_text())["seq"])

    def queued(self, sink_name: str) -> list[Entry]:
        """Entries the sink has not accepted yet, oldest first (all spooled ones for a new sink)."""
        cursor = self._cursors.get(sink_name, "")
        return [
            Entry.parse((self._entries / f"{key}.json").read_bytes()) for key in self._keys if key > cursor
        ]

    def unknown_sinks(self) -> list[str]:
        """Sinks with progress in the spool that are no longer configured (their backlog is dropped)."""
        return sorted(set(self._cursors) - set(self._sinks))

    def head(self) -> ChainHead:
        """The chain's head: the greater of head.json and the highest record still spooled."""
        head = ChainHead()
        if self._head_path.exists():
            raw = json.loads(self._head_path.read_text())
            head = ChainHead(seq=int(raw["seq"]), hash=str(raw["hash"]))
        for key in reversed(self._keys):
            if key.endswith("-a"):
                raw = json.loads((self._entries / f"{key}.json").read_bytes())
                if raw["seq"] > head.seq:
                    head = ChainHead(seq=int(raw["seq"]), hash=str(raw["hash"]))
                break
        return head

    def put(self, entry: Entry) -> None:
        """Durably spools the entry for every sink, or raises OSError and leaves no trace."""
        tmp = self._tmp / f"{entry.key}.json"
        try:
            _write_synced(tmp, entry.line)
            os.replace(tmp, self._entries / f"{entry.key}.json")
            _fsync_dir(self._entries)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._keys.append(entry.key)
            if entry.kind == "record":
                self._head_key = entry.key

    def delivered(self, sink_name: str, key: str) -> None:
        """Records that the sink accepted everything up to `key`; drops entries all sinks have."""
        with self._lock:
            if key <= self._cursors.get(sink_name, ""):
                return
            self._write_atomically(self._cursors_dir / f"{sink_name}.json", {"key": key}, durable=False)
            self._cursors[sink_name] = key
            done = min(self._cursors.get(name, "") for name in self._sinks)
            gone: list[str] = []
            kept = None
            while self._keys and self._keys[0] <= done:
                oldest = self._keys.popleft()
                if oldest == self._head_key:
                    kept = oldest
                else:
                    gone.append(oldest)
            if kept is not None:
                self._keys.appendleft(kept)
            for oldest in gone:
                (self._entries / f"{oldest}.json").unlink(missing_ok=True)

    def last_checkpoint(self) -> CheckpointRef | None:
        path = self.directory / "checkpoint.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return CheckpointRef(hash=str(raw["hash"]), time=datetime.fromisoformat(str(raw["time"])))

    def write_checkpoint(self, ref: CheckpointRef) -> None:
        content: dict[str, object] = {"hash": ref.hash, "time": ref.time.isoformat()}
        with self._lock:
            self._write_atomically(self.directory / "checkpoint.json", content, durable=True)

    def write_head(self, head: ChainHead) -> None:
        with self._lock:
            self._save_head(head)

    def _save_head(self, head: ChainHead) -> None:
        if head.seq > self._saved_head_seq:
            self._write_atomically(self._head_path, {"seq": head.seq, "hash": head.hash}, durable=True)
            self._saved_head_seq = head.seq

    def _write_atomically(self, path: Path, content: dict[str, object], *, durable: bool) -> None:
        tmp = self._tmp / f"{path.parent.name}-{path.name}"
        _write_synced(tmp, json.dumps(content).encode(), sync=durable)
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes, *, sync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
