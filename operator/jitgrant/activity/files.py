"""`AuditLogFiles`: what kube-apiserver writes with `--audit-log-path`, and its rotated copies."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from jitgrant.activity.base import SourceError, Window
from jitgrant.activity.events import ApiCall, parse_lines


class AuditLogFiles:
    """A kube-apiserver audit log file (and its rotated siblings), or a directory of them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"audit log {self.path}"

    def files(self) -> list[Path]:
        """Oldest first, as rotation leaves them: rotated copies by modification time, the live file last."""
        if self.path.is_dir():
            candidates = [item for item in self.path.iterdir() if item.is_file() and ".log" in item.name]
        elif self.path.exists():
            stem, suffix = self.path.stem, self.path.suffix
            candidates = [
                item
                for item in self.path.parent.iterdir()
                if item == self.path
                or (item.is_file() and item.name.startswith(f"{stem}-") and suffix in item.name)
            ]
        else:
            raise SourceError(
                f"audit log {self.path} does not exist; kube-apiserver writes it where "
                "--audit-log-path points (a file, or the directory holding it and its rotated copies)"
            )
        return sorted(candidates, key=lambda item: (item.stat().st_mtime, item.name))

    def calls(self, window: Window) -> Iterator[ApiCall]:
        # As CloudWatch's filter pattern does server-side: a line naming none of the terms (the
        # grant's identities, its binding) is no call of the grant, and is not parsed. The idle end
        # reads the log again and again while a grant lives; a busy server's log is long.
        terms = tuple(term.encode() for term in window.terms if term)
        for path in self.files():
            # A file last written before the window began holds nothing of it (rotation is by time).
            if path.stat().st_mtime < (window.start - timedelta(minutes=1)).timestamp():
                continue
            lines = self._lines(path)
            if terms:
                lines = (line for line in lines if any(term in line for term in terms))
            yield from parse_lines(lines)

    @staticmethod
    def _lines(path: Path) -> Iterator[bytes]:
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as compressed:
                    yield from compressed
            else:
                with path.open("rb") as plain:
                    yield from plain
        except FileNotFoundError:
            return  # rotated away between listing and reading: its successor holds the lines
        except (OSError, EOFError) as exc:
            raise SourceError(f"cannot read audit log {path}: {exc}") from exc
