"""A local JSON-lines file: for development, or a volume that something else ships away."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from jitgrant.audit.config import FileSinkConfig
from jitgrant.audit.sinks.base import Entry, SinkError


class FileSink:
    def __init__(self, config: FileSinkConfig, *, name: str) -> None:
        self.name = name
        self._path = Path(config.path)
        self._fsync = config.fsync

    async def start(self) -> None:
        await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)

    async def write(self, entries: Sequence[Entry]) -> None:
        try:
            await asyncio.to_thread(self._append, b"".join(entry.line + b"\n" for entry in entries))
        except OSError as exc:
            raise SinkError(f"cannot append to {self._path}: {exc.strerror or exc}") from exc

    def _append(self, data: bytes) -> None:
        # O_APPEND: each write lands at the end even if something else appends too.
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    async def close(self) -> None:
        return None
