"""The on-disk spool: entries not yet delivered everywhere, each sink's progress, the chain's head.

Layout under the spool directory::

    head.json              {"seq": N, "hash": "..."}: the chain's head, saved at shutdown
    checkpoint.json        {"hash": "...", "time": "..."}: the last signed checkpoint, which the
                           next one names (saved with each checkpoint, so it survives a restart)
    entries/<key>.json     one batch of entries some configured sink has not accepted yet: their
                           lines, oldest first, one per line; named after the batch's first entry
    cursors/<sink>.json    {"key": "..."}: the last entry that sink accepted (sinks take entries in order)
    tmp/                   files being written; anything left here after a crash is discarded

A batch counts as spooled once its file is fsynced and renamed into `entries/` and that directory
is fsynced: two fsyncs per batch, however many entries it holds (group commit: the trail writes
together every record that arrived while the previous batch was being written) and however many
sinks there are. A batch file is written whole or not at all (tmp, fsync, rename), so a crash
leaves every batch either complete or absent. A batch of one is byte for byte the one-entry file
earlier versions wrote, so a spool they left is read as it is.

Because every sink accepts entries strictly in key order, one cursor per sink says what it still
lacks. A batch file goes once every configured sink's cursor has passed its last entry, except the
one holding the newest record, which stays as the chain's head (so the head survives a crash
without a write per record; `head.json` is written at shutdown as a second copy).

Cursors are replaced atomically but not fsynced, and each at most once a second (`CURSOR_SAVE_SECONDS`)
and at shutdown: a cursor lost or behind after a crash only means that entries still spooled are
delivered again, as repeats that readers skip, and it saves two fsyncs and a file write per
delivered batch. Which batch files can go is decided from the cursors in memory.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jitgrant.audit.checkpoint import CheckpointRef
from jitgrant.audit.records import ChainHead
from jitgrant.audit.sinks.base import Entry

_KEY = re.compile(r"^[0-9]{20}-(a|b-[0-9]{20})$")

#: How often at most each sink's cursor file is rewritten while entries are being delivered.
CURSOR_SAVE_SECONDS = 1.0


@dataclass(frozen=True)
class _Batch:
    """One file of `entries/`: the keys it holds, oldest first (its name is the first)."""

    keys: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.keys[0]

    @property
    def last(self) -> str:
        return self.keys[-1]

    def holds(self, key: str) -> bool:
        return self.first <= key <= self.last


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
        self._cursors_saved: dict[str, float] = {}  # when each cursor file was last written (monotonic)
        self._batches: deque[_Batch] = deque()  # the batch files, oldest first
        self._head_key = ""  # the newest record's key: the batch holding it is kept
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
        names = sorted(path.stem for path in self._entries.glob("*.json") if _KEY.match(path.stem))
        self._batches = deque(_Batch(tuple(entry.key for entry in self._read(name))) for name in names)
        records = [key for batch in self._batches for key in batch.keys if key.endswith("-a")]
        self._head_key = max(records, default="")
        if self._head_path.exists():
            self._saved_head_seq = int(json.loads(self._head_path.read_text())["seq"])

    def _read(self, name: str) -> list[Entry]:
        data = (self._entries / f"{name}.json").read_bytes()
        # Canonical JSON escapes newlines inside strings: a newline only ever separates entries.
        return [Entry.parse(line) for line in data.split(b"\n") if line]

    def queued(self, sink_name: str) -> list[Entry]:
        """Entries the sink has not accepted yet, oldest first (all spooled ones for a new sink)."""
        cursor = self._cursors.get(sink_name, "")
        return [
            entry
            for batch in self._batches
            if batch.last > cursor
            for entry in self._read(batch.first)
            if entry.key > cursor
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
        if self._head_key:
            batch = next(batch for batch in reversed(self._batches) if batch.holds(self._head_key))
            for entry in self._read(batch.first):
                if entry.key == self._head_key and entry.seq > head.seq:
                    raw = json.loads(entry.line)
                    head = ChainHead(seq=int(raw["seq"]), hash=str(raw["hash"]))
        return head

    def put(self, entry: Entry) -> None:
        """Durably spools one entry (a batch of one)."""
        self.put_batch([entry])

    def put_batch(self, entries: Sequence[Entry]) -> None:
        """Durably spools the entries (in key order) with one file and two fsyncs, or raises
        OSError and leaves no trace."""
        if not entries:
            return
        name = entries[0].key
        tmp = self._tmp / f"{name}.json"
        try:
            _write_synced(tmp, b"\n".join(entry.line for entry in entries))
            os.replace(tmp, self._entries / f"{name}.json")
            _fsync_dir(self._entries)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._batches.append(_Batch(tuple(entry.key for entry in entries)))
            records = [entry.key for entry in entries if entry.kind == "record"]
            if records:
                self._head_key = records[-1]

    def delivered(self, sink_name: str, key: str) -> None:
        """Records that the sink accepted everything up to `key`; drops batches all sinks have."""
        with self._lock:
            if key <= self._cursors.get(sink_name, ""):
                return
            self._cursors[sink_name] = key
            now = time.monotonic()
            if now - self._cursors_saved.get(sink_name, -CURSOR_SAVE_SECONDS) >= CURSOR_SAVE_SECONDS:
                self._save_cursor(sink_name)
                self._cursors_saved[sink_name] = now
            done = min(self._cursors.get(name, "") for name in self._sinks)
            gone: list[_Batch] = []
            kept = None
            while self._batches and self._batches[0].last <= done:
                oldest = self._batches.popleft()
                if oldest.holds(self._head_key):
                    kept = oldest
                else:
                    gone.append(oldest)
            if kept is not None:
                self._batches.appendleft(kept)
            for oldest in gone:
                (self._entries / f"{oldest.first}.json").unlink(missing_ok=True)

    def save_cursors(self) -> None:
        """Writes every configured sink's cursor as it is now (at shutdown)."""
        with self._lock:
            for name in self._sinks:
                if name in self._cursors:
                    self._save_cursor(name)

    def _save_cursor(self, sink_name: str) -> None:
        content: dict[str, object] = {"key": self._cursors[sink_name]}
        self._write_atomically(self._cursors_dir / f"{sink_name}.json", content, durable=False)

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
