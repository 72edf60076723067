"""Standard output, one JSON line per entry: for development and log collectors."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jitgrant.audit.config import StdoutSinkConfig
from jitgrant.audit.sinks.base import Entry, SinkError


class StdoutSink:
    def __init__(self, config: StdoutSinkConfig, *, name: str) -> None:
        self.name = name

    async def start(self) -> None:
        return None

    async def write(self, entries: Sequence[Entry]) -> None:
        try:
            # Looked up on each call so tests (and redirections) see it.
            sys.stdout.write("".join(entry.line.decode() + "\n" for entry in entries))
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(f"cannot write to stdout: {exc}") from exc

    async def close(self) -> None:
        return None
