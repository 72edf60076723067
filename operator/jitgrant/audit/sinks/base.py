"""What every sink is: something that durably accepts a batch of entries, or raises."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from jitgrant.audit.chain import canonical_json
from jitgrant.audit.records import AuditRecord, Checkpoint


class SinkError(Exception):
    """A sink did not accept a batch; the batch stays queued and is retried."""


@dataclass(frozen=True)
class Entry:
    """One line of the trail (a record or a checkpoint) in the exact bytes every sink stores."""

    kind: Literal["record", "checkpoint"]
    seq: int
    time: datetime
    line: bytes  # canonical JSON, no trailing newline

    @property
    def key(self) -> str:
        """Orders entries as they were made: record N, then checkpoints taken at head N."""
        if self.kind == "record":
            return f"{self.seq:020d}-a"
        return f"{self.seq:020d}-b-{int(self.time.timestamp() * 1_000_000):020d}"

    @classmethod
    def of(cls, item: AuditRecord | Checkpoint) -> Entry:
        time = item.event.time if isinstance(item, AuditRecord) else item.time
        return cls(kind=item.kind, seq=item.seq, time=time, line=canonical_json(item.to_wire()))

    @classmethod
    def parse(cls, line: bytes) -> Entry:
        """Rebuilds an entry from its stored line (the spool); the bytes are kept as they were."""
        raw = json.loads(line)
        if raw["kind"] == "record":
            record = AuditRecord.model_validate(raw)
            return cls(kind="record", seq=record.seq, time=record.event.time, line=line)
        checkpoint = Checkpoint.model_validate(raw)
        return cls(kind="checkpoint", seq=checkpoint.seq, time=checkpoint.time, line=line)


class Sink(Protocol):
    """A destination for the trail.

    `write` must be safe to call again with entries it may already hold (a retry after a lost
    answer): the duplicates it then stores are identical, and readers skip them.
    """

    name: str

    async def start(self) -> None: ...

    async def write(self, entries: Sequence[Entry]) -> None: ...

    async def close(self) -> None: ...
