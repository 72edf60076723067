"""The hash chain: canonical hashing, linking records, and checking a chain read back.

Pure: no I/O and no cloud SDKs, so an auditor can run it offline on whatever the sinks hold.
Hashes are always computed over the *raw* JSON object read back, never over a re-parsed model,
so a field added, removed or reformatted by someone else changes the hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitgrant.audit.checkpoint import checkpoint_hash, checkpoint_signature_error
from jitgrant.audit.records import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    AuditEvent,
    AuditRecord,
    ChainHead,
    canonical_json,
)

__all__ = [
    "ChainHead",
    "Coverage",
    "Finding",
    "StoredLine",
    "VerifyReport",
    "canonical_json",
    "link",
    "record_hash",
    "verify_chain",
]


def record_hash(raw: dict[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of a record without its own `hash` field."""
    body = {key: value for key, value in raw.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


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


# --- Checking a chain read back from a sink -------------------------------------------------------

#: Slack on the heartbeat: a checkpoint may be this late (sink delivery, a busy event loop) before
#: its absence counts as a cut.
DEFAULT_GRACE = timedelta(seconds=60)

#: How far a renumbered record is searched for its original position (an insertion or deletion
#: followed by renumbering shifts every later record by the number of records added or removed).
_RENUMBER_WINDOW = 16


@dataclass(frozen=True)
class StoredLine:
    """One stored entry as a reader found it, with where it was found (for the report)."""

    location: str
    data: bytes


@dataclass(frozen=True)
class Finding:
    kind: Literal[
        "modified",
        "deleted",
        "reordered",
        "inserted",
        "truncated",
        "malformed",
        "bad-checkpoint",
        "stale",
        "uncovered",
    ]
    seq: int | None
    detail: str
    location: str | None = None


@dataclass(frozen=True)
class Coverage:
    """What the signed checkpoints prove, in words for the report (empty without a public key)."""

    proven: tuple[str, ...] = ()
    unproven: tuple[str, ...] = ()
    proven_through_seq: int | None = None
    proven_from: datetime | None = None
    proven_until: datetime | None = None  # the newest checkpoint's time
    closed: bool = False  # the newest checkpoint is a shutdown checkpoint
    interval_seconds: float | None = None


@dataclass(frozen=True)
class VerifyReport:
    records: int
    first_seq: int | None
    last_seq: int | None
    duplicates: int
    checkpoints: int
    verified_checkpoints: int
    last_checkpoint_seq: int | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    coverage: Coverage = Coverage()
    repeated_transitions: int = 0  # records repeating an earlier record's transitionId

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [finding.seq for finding in self.findings if finding.seq is not None]
        return min(seqs) if seqs else None


@dataclass(frozen=True)
class ParsedLine:
    location: str
    raw: dict[str, Any]
    canonical: bytes


def parse_lines(
    lines: Iterable[StoredLine],
) -> tuple[list[ParsedLine], list[ParsedLine], list[Finding]]:
    """Splits stored lines into records and checkpoints (storage order kept) and unreadable ones."""
    records: list[ParsedLine] = []
    checkpoints: list[ParsedLine] = []
    malformed: list[Finding] = []
    for line in lines:
        try:
            raw = json.loads(line.data)
        except ValueError as exc:
            malformed.append(Finding("malformed", None, f"not JSON: {exc}", line.location))
            continue
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind not in ("record", "checkpoint") or not isinstance(raw.get("seq"), int):
            malformed.append(Finding("malformed", None, "neither a record nor a checkpoint", line.location))
            continue
        stored = ParsedLine(line.location, raw, canonical_json(raw))
        (records if kind == "record" else checkpoints).append(stored)
    return records, checkpoints, malformed


def unique_records(stored: list[ParsedLine]) -> tuple[list[ParsedLine], int]:
    """Drops exact repeats (what a retried delivery leaves behind); returns the rest and the count."""
    seen: set[bytes] = set()
    unique: list[ParsedLine] = []
    for item in stored:
        if item.canonical not in seen:
            seen.add(item.canonical)
            unique.append(item)
    return unique, len(stored) - len(unique)


def _original_seq(raw: dict[str, Any]) -> int | None:
    """If the record hashes correctly under another sequence number, that number (it was renumbered)."""
    seq = raw["seq"]
    for candidate in range(max(1, seq - _RENUMBER_WINDOW), seq + _RENUMBER_WINDOW + 1):
        if candidate != seq and record_hash({**raw, "seq": candidate}) == raw.get("hash"):
            return candidate
    return None


class _Walk:
    """Walks the records in sequence order, accumulating findings."""

    def __init__(self, start_seq: int) -> None:
        self.start_seq = start_seq
        self.findings: dict[tuple[str, int | None], Finding] = {}
        self.hash_at: dict[int, str] = {}
        self.prev_seq = start_seq - 1
        self.prev_hash: str | None = GENESIS_HASH if start_seq == 1 else None
        self.before_prev_hash: str | None = None
        self.shift = 0

    def add(self, finding: Finding) -> None:
        self.findings.setdefault((finding.kind, finding.seq), finding)

    def step(self, seq: int, versions: list[ParsedLine], *, next_links: set[str]) -> None:
        if seq > self.prev_seq + 1:
            missing = f"{self.prev_seq + 1}" + (f"..{seq - 1}" if seq - 1 > self.prev_seq + 1 else "")
            self.add(Finding("deleted", self.prev_seq + 1, f"record {missing} missing", versions[0].location))
            self.before_prev_hash, self.prev_hash = None, None
        chosen = self._choose(seq, versions, next_links=next_links)
        raw = chosen.raw
        renumbered = record_hash(raw) != raw.get("hash") and self._explain_bad_hash(seq, chosen)
        # A renumbering already explains a broken link at this point.
        if not renumbered and self.prev_hash is not None and raw.get("prevHash") != self.prev_hash:
            if seq == self.start_seq:
                self.add(Finding("modified", seq, "does not start from the genesis hash", chosen.location))
            elif self.before_prev_hash is not None and raw.get("prevHash") == self.before_prev_hash:
                detail = f"record {seq - 1} does not belong: record {seq} links past it"
                self.add(Finding("inserted", seq - 1, detail, chosen.location))
            else:
                detail = f"record {seq - 1} was changed and re-hashed (record {seq} links to another hash)"
                self.add(Finding("modified", seq - 1, detail, chosen.location))
        self.before_prev_hash, self.prev_hash = self.prev_hash, str(raw.get("hash"))
        # Checkpoints name records by their original numbers.
        self.hash_at[seq - self.shift] = self.prev_hash
        self.prev_seq = seq

    def _choose(self, seq: int, versions: list[ParsedLine], *, next_links: set[str]) -> ParsedLine:
        if len(versions) == 1:
            return versions[0]

        # Several different records claim this sequence number: keep the one that fits the chain
        # (valid hash, linked from the previous record and to the next one).
        def fit(stored: ParsedLine) -> int:
            raw = stored.raw
            return (
                (record_hash(raw) == raw.get("hash"))
                + (self.prev_hash is None or raw.get("prevHash") == self.prev_hash)
                + (raw.get("hash") in next_links)
            )

        chosen = max(versions, key=fit)
        for stored in versions:
            if stored is not chosen:
                detail = f"a second, different record claims seq {seq}"
                self.add(Finding("inserted", seq, detail, stored.location))
        return chosen

    def _explain_bad_hash(self, seq: int, stored: ParsedLine) -> bool:
        """Reports a record whose hash fails; True when renumbering explains it."""
        original = _original_seq(stored.raw)
        if original is None:
            self.add(Finding("modified", seq, "content does not match its hash", stored.location))
            return False
        shift = seq - original
        if shift != self.shift:
            # Records were renumbered to hide an insertion (moved up) or a deletion (moved down).
            change = shift - self.shift
            if change > 0:
                first = seq - change
                detail = f"{change} record(s) inserted at seq {first}; later records renumbered"
                self.add(Finding("inserted", first, detail, stored.location))
            else:
                detail = f"{-change} record(s) deleted at seq {seq}; later records renumbered"
                self.add(Finding("deleted", seq, detail, stored.location))
            self.shift = shift
        return True


def verify_chain(
    lines: Iterable[StoredLine],
    *,
    public_keys: Mapping[str, Ed25519PublicKey] | None = None,
    start_seq: int = 1,
    until: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    interval: timedelta | None = None,
) -> VerifyReport:
    """Checks a trail as stored: every record's hash, every link, order, gaps, and checkpoints.

    `lines` come in storage order (file order, S3 key order, CloudWatch event order). Exact repeats
    are skipped. Checkpoints are checked against `public_keys` (key id -> key); without keys they are
    still compared with the chain, but a forger could have written them too.

    With keys, only records covered by a valid signed checkpoint count as proven, and the heartbeat
    is checked: the newest checkpoint must be younger than its cadence (`interval`, by default the
    one it states) plus `grace` at `until`, unless it is a shutdown checkpoint, and no record may
    follow it by more than that. Without `until` the newest checkpoint's age is not judged.
    """
    stored_records, stored_checkpoints, malformed = parse_lines(lines)
    records, duplicates = unique_records(stored_records)
    walk = _Walk(start_seq)
    for finding in malformed:
        walk.add(finding)

    # Storage order: a record stored after one with a higher sequence number was moved.
    highest = 0
    for stored in records:
        seq = stored.raw["seq"]
        if seq < highest:
            detail = f"record {seq} is stored after record {highest}"
            walk.add(Finding("reordered", seq, detail, stored.location))
        highest = max(highest, seq)

    by_seq: dict[int, list[ParsedLine]] = {}
    for stored in records:
        if stored.raw["seq"] >= start_seq:
            by_seq.setdefault(stored.raw["seq"], []).append(stored)
    for seq in sorted(by_seq):
        next_links = {str(stored.raw.get("prevHash")) for stored in by_seq.get(seq + 1, [])}
        walk.step(seq, by_seq[seq], next_links=next_links)

    notes: list[str] = []
    checkpoints, repeated_checkpoints = unique_records(stored_checkpoints)
    duplicates += repeated_checkpoints
    verified = 0
    trusted: list[ParsedLine] = []
    for stored in checkpoints:
        if public_keys is None:
            trusted.append(stored)
            continue
        error = checkpoint_signature_error(stored.raw, public_keys)
        if error is None:
            verified += 1
            trusted.append(stored)
        else:
            walk.add(Finding("bad-checkpoint", stored.raw["seq"], f"checkpoint {error}", stored.location))
    if public_keys is None and checkpoints:
        notes.append("checkpoint signatures not checked (no public key given): a forger could write them")

    good_through = _compare_checkpoints(walk, trusted, start_seq=start_seq)
    last_seq = max(by_seq) if by_seq else None
    last_checkpoint = max((stored.raw["seq"] for stored in trusted), default=None)
    coverage = Coverage()
    if public_keys is not None:
        coverage = _coverage(
            walk,
            trusted,
            records=[versions[0] for _, versions in sorted(by_seq.items())],
            good_through=good_through,
            until=until,
            grace=grace,
            interval=interval,
        )
    elif not trusted:
        notes.append("no trusted checkpoint: a rewrite of the whole chain or a truncation is not detectable")
    elif last_seq is not None and last_checkpoint is not None and last_seq > last_checkpoint:
        notes.append(
            f"records {last_checkpoint + 1}..{last_seq} come after the last checkpoint: "
            "their removal would not be detectable"
        )
    if duplicates:
        notes.append(f"{duplicates} repeated entries skipped (retried deliveries)")
    repeated = repeated_transitions(records)
    if repeated:
        notes.append(
            f"{repeated} transition(s) recorded again under the same transitionId (written again after a "
            "restart or a leader change; `jitgrant audit query` counts each once)"
        )
    instances = sorted({str(stored.raw.get("instance")) for stored in records})
    if len(instances) > 1:
        notes.append(f"records from several operator instances: {', '.join(instances)}")

    findings = sorted(walk.findings.values(), key=lambda f: (f.seq is None, f.seq or 0, f.kind))
    return VerifyReport(
        records=len(by_seq),
        first_seq=min(by_seq) if by_seq else None,
        last_seq=last_seq,
        duplicates=duplicates,
        checkpoints=len(checkpoints),
        verified_checkpoints=verified,
        last_checkpoint_seq=last_checkpoint,
        findings=tuple(findings),
        notes=tuple(notes),
        coverage=coverage,
        repeated_transitions=repeated,
    )


def repeated_transitions(records: Iterable[ParsedLine]) -> int:
    """Records whose `event.transitionId` an earlier record already carries (not tampering: the same
    transition written again by a process that did not know the first write had happened)."""
    seen: set[str] = set()
    repeats = 0
    for stored in records:
        event = stored.raw.get("event")
        key = event.get("transitionId") if isinstance(event, dict) else None
        if isinstance(key, str):
            repeats += key in seen
            seen.add(key)
    return repeats


def _compare_checkpoints(walk: _Walk, trusted: list[ParsedLine], *, start_seq: int) -> int:
    """Checks each trusted checkpoint's head against the chain; returns the last seq they vouch for."""
    good_through = start_seq - 1
    for stored in sorted(trusted, key=lambda item: item.raw["seq"]):
        seq, head_hash = stored.raw["seq"], stored.raw.get("headHash")
        if seq < start_seq:
            continue
        if not walk.hash_at or seq > max(walk.hash_at):
            last_original = max(walk.hash_at, default=start_seq - 1)
            detail = f"checkpoint at seq {seq} but the trail ends at {last_original or 'nothing'}"
            walk.add(Finding("truncated", last_original + 1, detail, stored.location))
        elif seq in walk.hash_at and walk.hash_at[seq] != head_hash:
            detail = (
                f"checkpoint at seq {seq} signed head {head_hash}, the trail has {walk.hash_at[seq]}: "
                f"records between {good_through + 1} and {seq} were rewritten"
            )
            walk.add(Finding("modified", good_through + 1, detail, stored.location))
        else:
            good_through = max(good_through, seq)
    return good_through


def _time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _span(value: timedelta) -> str:
    return str(timedelta(seconds=int(value.total_seconds())))


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _checkpoint_chain(walk: _Walk, ordered: list[ParsedLine]) -> list[str]:
    """Each checkpoint must name one that is present (the first may name one before this trail).

    Returns notes on gaps in the heartbeat that the links show to be downtime, not deletion.
    """
    notes: list[str] = []
    present = {checkpoint_hash(stored.raw) for stored in ordered}
    for previous, stored in itertools.pairwise(ordered):
        named = stored.raw.get("prevCheckpointHash")
        if named is None:
            # Older operators wrote no links. A new one without a link lost its spool's state (only a
            # signer can write one, so this is not a forgery); the links after it still hold.
            if previous.raw.get("intervalSeconds") is not None:
                notes.append(
                    f"the checkpoint of {stored.raw.get('time')} names no predecessor: the operator "
                    "restarted without its spool's checkpoint state"
                )
            continue
        if named not in present:
            detail = (
                f"checkpoint of {stored.raw.get('prevCheckpointTime')}, named by the one of "
                f"{stored.raw.get('time')}, is missing"
            )
            walk.add(Finding("deleted", stored.raw["seq"], detail, stored.location))
            continue
        gap_from, gap_to = _time(previous.raw.get("time")), _time(stored.raw.get("time"))
        interval = stored.raw.get("intervalSeconds")
        if (
            previous.raw.get("reason") != "shutdown"
            and isinstance(interval, int | float)
            and gap_from is not None
            and gap_to is not None
            and gap_to - gap_from > timedelta(seconds=2 * interval)
        ):
            notes.append(
                f"no heartbeat between {_iso(gap_from)} and {_iso(gap_to)} (the operator was down or "
                "stalled; the checkpoints link, so nothing was removed there)"
            )
    return notes


def _coverage(
    walk: _Walk,
    trusted: list[ParsedLine],
    *,
    records: list[ParsedLine],
    good_through: int,
    until: datetime | None,
    grace: timedelta,
    interval: timedelta | None,
) -> Coverage:
    """What the valid signed checkpoints prove, and findings for what a heartbeat shows missing."""
    first_seq = records[0].raw["seq"] if records else None
    last_seq = records[-1].raw["seq"] if records else None
    if not trusted:
        what = f"records {first_seq}..{last_seq}" if records else "the trail"
        walk.add(
            Finding(
                "uncovered",
                first_seq,
                f"no checkpoint with a valid signature: nothing in {what} is proven "
                "(a rewritten, forged or truncated trail looks exactly like this)",
            )
        )
        return Coverage(unproven=(f"{what}: no valid signed checkpoint covers it",))
    ordered = sorted(trusted, key=lambda item: (str(item.raw.get("time")), item.raw["seq"]))
    notes = _checkpoint_chain(walk, ordered)
    newest = ordered[-1]
    newest_time = _time(newest.raw.get("time"))
    stated = newest.raw.get("intervalSeconds")
    cadence = interval or (timedelta(seconds=stated) if isinstance(stated, int | float) else None)
    closed = newest.raw.get("reason") == "shutdown"
    proven: list[str] = []
    unproven: list[str] = list(notes)
    first_time = _time(ordered[0].raw.get("time"))
    if good_through >= 1 and first_seq is not None and good_through >= first_seq:
        proven.append(
            f"records {first_seq}..{good_through} are intact and in order: signed checkpoints vouch for them"
        )
    if newest_time is not None and first_time is not None:
        state = " (the operator then shut down)" if closed else ""
        proven.append(
            f"nothing was removed between the checkpoints of {_iso(first_time)} "
            f"and {_iso(newest_time)}{state}"
        )
    if last_seq is not None and last_seq > good_through:
        unproven.append(
            f"records {good_through + 1}..{last_seq} come after the newest checkpoint: not proven, "
            "their removal would not be detectable"
        )
    if cadence is None:
        unproven.append(
            "the checkpoints do not state a heartbeat interval (written by an older operator): "
            "a trail cut after the newest checkpoint cannot be told from a quiet one"
        )
    elif newest_time is not None:
        _check_tail(
            walk,
            newest,
            records=[stored for stored in records if stored.raw["seq"] > good_through],
            cadence=cadence,
            grace=grace,
            until=until,
            unproven=unproven,
        )
    return Coverage(
        proven=tuple(proven),
        unproven=tuple(unproven),
        proven_through_seq=good_through if good_through >= 1 else None,
        proven_from=first_time,
        proven_until=newest_time,
        closed=closed,
        interval_seconds=cadence.total_seconds() if cadence else None,
    )


def _check_tail(
    walk: _Walk,
    newest: ParsedLine,
    *,
    records: list[ParsedLine],
    cadence: timedelta,
    grace: timedelta,
    until: datetime | None,
    unproven: list[str],
) -> None:
    """The CloudTrail digest rule: a heartbeat too old, or records long after it, mean a cut tail.

    `records` are those no checkpoint covers.
    """
    newest_time = _time(newest.raw.get("time"))
    assert newest_time is not None  # checked by the caller
    closed = newest.raw.get("reason") == "shutdown"
    allowed = cadence + grace
    for stored in records:
        written = _time(stored.raw.get("event", {}).get("time"))
        if closed or (written is not None and written - newest_time > allowed):
            when = "after the operator's shutdown checkpoint" if closed else "more than one interval after"
            detail = (
                f"record {stored.raw['seq']} was written {when} the newest checkpoint "
                f"({_iso(newest_time)}): the checkpoints that covered it were removed"
            )
            walk.add(Finding("uncovered", stored.raw["seq"], detail, stored.location))
            break
    if until is None:
        unproven.append("the newest checkpoint's age was not judged (no time to judge it against)")
    elif closed:
        unproven.append(
            f"nothing after the shutdown checkpoint of {_iso(newest_time)}: consistent with the operator "
            f"being stopped up to {_iso(until)}"
        )
    elif until - newest_time > allowed:
        detail = (
            f"the newest checkpoint is of {_iso(newest_time)}, {_span(until - newest_time)} before "
            f"{_iso(until)}, but one is written every {_span(cadence)} (allowing {_span(grace)} late): "
            "the end of the trail is missing"
        )
        walk.add(Finding("stale", newest.raw["seq"] + 1, detail, newest.location))
    else:
        unproven.append(
            f"the last {_span(until - newest_time)} before {_iso(until)} is covered by no checkpoint yet: "
            "a cut there is not detectable until the next heartbeat"
        )
