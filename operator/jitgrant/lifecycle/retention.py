"""How long a finished AccessRequest stays in the cluster: a pure decision on its status and the time.

A request that ended (Expired, Revoked, Denied, TimedOut, Failed) holds no access, but it keeps the
operator's finalizer and would stay forever. After `finished_retention` (counted from
`status.endedAt`) the operator records its removal in the audit trail, which is the long-term
record, and deletes it. A retention of zero keeps finished requests forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from jitgrant.models.base import MAX_DURATION_TEXT, format_duration, parse_duration
from jitgrant.models.request import TERMINAL_PHASES
from jitgrant.models.vocabulary import parse_time

_TERMINAL = frozenset(phase.value for phase in TERMINAL_PHASES)
KEEP_FOREVER = timedelta(0)
DEFAULT_RETENTION = timedelta(days=7)
# What `--finished-retention` and the chart's `finishedRetention` accept, for error messages.
RETENTION_SYNTAX = f'"0" (keep forever) or a duration like 168h, 30m or 90s (at most {MAX_DURATION_TEXT})'


class Disposal(StrEnum):
    NONE = "none"  # not finished, or kept forever: nothing to do
    STAMP = "stamp"  # finished without a readable endedAt: record one now, the retention counts from it
    WAIT = "wait"  # finished; removed at `remove_at`
    REMOVE = "remove"  # finished longer ago than the retention: remove it now


@dataclass(frozen=True)
class Removal:
    disposal: Disposal
    ended_at: datetime | None = None
    remove_at: datetime | None = None


def parse_retention(text: str) -> timedelta:
    """Zero ("0", "0s": keep forever), or a duration as AccessRequests write them ("168h", "90m")."""
    stripped = text.strip() if isinstance(text, str) else text
    if stripped in ("0", "0s", "0m", "0h"):
        return KEEP_FOREVER
    try:
        return parse_duration(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not a retention: expected {RETENTION_SYNTAX}") from None


def describe_retention(retention: timedelta) -> str:
    return "forever" if retention <= KEEP_FOREVER else format_duration(retention)


def ended_at(status: Mapping[str, Any]) -> datetime | None:
    """`status.endedAt` when it is a readable time, else None."""
    value = status.get("endedAt")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def removal(status: Mapping[str, Any], *, retention: timedelta, now: datetime) -> Removal:
    """Whether and when a request whose stored status is `status` is removed."""
    if status.get("phase") not in _TERMINAL or retention <= KEEP_FOREVER:
        return Removal(Disposal.NONE)
    ended = ended_at(status)
    if ended is None:
        # Written by hand or by an operator that predates endedAt: counting from now can only keep
        # it longer than asked, never remove it early.
        return Removal(Disposal.STAMP)
    remove_at = ended + retention
    if remove_at <= now:
        return Removal(Disposal.REMOVE, ended_at=ended, remove_at=remove_at)
    return Removal(Disposal.WAIT, ended_at=ended, remove_at=remove_at)
