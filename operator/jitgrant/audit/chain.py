"""The hash chain: canonical hashing, linking records, and checking a chain read back.

Pure: no I/O and no cloud SDKs, so an auditor can run it offline on whatever the sinks hold.
Hashes are always computed over the *raw* JSON object read back, never over a re-parsed model,
so a field added, removed or reformatted by someone else changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jitgrant.audit.records import GENESIS_HASH, SCHEMA_VERSION, AuditEvent, AuditRecord


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the one byte form that is hashed and signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(raw: dict[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of a record without its own `hash` field."""
    body = {key: value for key, value in raw.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """Where the chain stands: the last record's sequence number and hash (0 and genesis if none)."""

    seq: int = 0
    hash: str = GENESIS_HASH


def link(event: AuditEvent, *, head: ChainHead, instance: str) -> AuditRecord:
    """The record that follows `head`. Its hash covers the event, the position and the link."""
    draft = AuditRecord(
        schema_version=SCHEMA_VERSION,
        seq=head.seq + 1,
        prev_hash=head.hash,
        hash="",
        instance=instance,
        event=event,
    )
    return draft.model_copy(update={"hash": record_hash(draft.to_wire())})
