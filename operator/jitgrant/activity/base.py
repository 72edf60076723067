"""What every audit source is: `calls(window)`, and the one error a source raises. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jitgrant.activity.events import ApiCall


class SourceError(Exception):
    """The audit log could not be read; the message says why and what would fix it."""


@dataclass(frozen=True)
class Window:
    """What to read: the grant's window and the terms that narrow a server-side search."""

    start: datetime
    end: datetime | None  # None: up to now
    terms: frozenset[str] = frozenset()  # usernames, the binding name: any may appear in a call


class AuditSource(Protocol):
    name: str

    def calls(self, window: Window) -> Iterator[ApiCall]: ...
