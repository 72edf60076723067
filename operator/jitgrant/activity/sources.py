"""Where the API server's audit Events are read from, behind one small interface.

* `AuditLogFiles`: what kube-apiserver writes with `--audit-log-path` (a self-managed or kind
  cluster, the embedded test server), one Event per line. Rotated files next to it
  (`audit-2025-03-01T12-00-00.000.log`, gzipped with `--audit-log-compress`) are read too.
* `CloudWatchAuditLogs`: EKS, where control-plane audit logging sends the same Events to the log
  group `/aws/eks/<cluster>/cluster`, streams `kube-apiserver-audit-*`.

A source returns every call it holds in the window (with a few seconds of slack); attribution to a
grant is `attribution.activity`'s job, so every source is judged by the same rules.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jitgrant.activity.events import ApiCall, parse_lines
from jitgrant.extras import require

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient


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
        for path in self.files():
            # A file last written before the window began holds nothing of it (rotation is by time).
            if path.stat().st_mtime < (window.start - timedelta(minutes=1)).timestamp():
                continue
            yield from parse_lines(self._lines(path))

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


#: The API errors that mean "slow down" (CloudWatch Logs answers ThrottlingException).
_THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})


def eks_log_group(cluster: str) -> str:
    return f"/aws/eks/{cluster}/cluster"


class CloudWatchAuditLogs:
    """EKS control-plane audit logs: FilterLogEvents over the cluster's log group, paged."""

    STREAM_PREFIX = "kube-apiserver-audit"

    def __init__(
        self,
        *,
        cluster: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        log_group: str | None = None,
        client: CloudWatchLogsClient | None = None,
        page_size: int = 10_000,
        retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.log_group = log_group or eks_log_group(cluster)
        self.name = f"CloudWatch Logs {self.log_group}"
        self._region, self._endpoint_url = region, endpoint_url
        self._client = client
        self._page_size, self._retries, self._backoff, self._sleep = page_size, retries, backoff, sleep

    def _logs(self) -> CloudWatchLogsClient:
        if self._client is None:
            require("aws", feature="reading EKS audit logs from CloudWatch Logs")
            import boto3

            self._client = boto3.session.Session().client(
                "logs", region_name=self._region, endpoint_url=self._endpoint_url
            )
        return self._client

    def calls(self, window: Window) -> Iterator[ApiCall]:
        for page in self._pages(window):
            messages = (
                event.get("message", "")
                for event in page.get("events", [])
                if str(event.get("logStreamName", "")).startswith(self.STREAM_PREFIX)
            )
            yield from parse_lines(messages)

    def _pages(self, window: Window) -> Iterator[dict[str, Any]]:
        slack = timedelta(seconds=5)
        request: dict[str, Any] = {
            "logGroupName": self.log_group,
            "logStreamNamePrefix": self.STREAM_PREFIX,
            "startTime": int((window.start - slack).timestamp() * 1000),
            "limit": self._page_size,
        }
        if window.end is not None:
            request["endTime"] = int((window.end + slack).timestamp() * 1000)
        if window.terms:
            # "?a ?b": any of the terms; the identity or the binding name is in every call of the grant.
            request["filterPattern"] = " ".join(f'?"{term}"' for term in sorted(window.terms))
        while True:
            page = self._call(request)
            yield page
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return dict(self._logs().filter_log_events(**request))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ResourceNotFoundException":
                    raise SourceError(self._missing_group()) from exc
                if code not in _THROTTLED:
                    raise SourceError(f"cannot read {self.name}: {exc}") from exc
                if attempt == self._retries:
                    raise SourceError(
                        f"CloudWatch Logs kept throttling the reads of {self.log_group} "
                        f"({self._retries + 1} tries): try again in a minute, or narrow the window"
                    ) from exc
                self._sleep(delay)
                delay *= 2
            except BotoCoreError as exc:
                raise SourceError(f"cannot read {self.name}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _missing_group(self) -> str:
        return (
            f"log group {self.log_group} does not exist: control-plane audit logging is off for EKS "
            f"cluster {self.cluster!r} (or the region is wrong). Turn it on with: aws eks "
            f"update-cluster-config --name {self.cluster} --logging "
            '\'{"clusterLogging":[{"types":["audit"],"enabled":true}]}\'; '
            "calls made before that are not recorded anywhere"
        )
