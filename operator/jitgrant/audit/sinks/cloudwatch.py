"""CloudWatch Logs: one log stream per operator instance, one log event per entry.

Log events cannot be edited through the API, only whole streams or groups deleted (which an IAM
policy and the group's retention setting control). Event timestamps are delivery times, kept
non-decreasing, because CloudWatch refuses a batch out of time order or older than its limits; the
record's own time is inside the message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jitgrant.audit.config import CloudWatchSinkConfig
from jitgrant.audit.sinks._aws import logs_client
from jitgrant.audit.sinks.base import Entry, SinkError
from jitgrant.extras import require

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef


class CloudWatchSink:
    def __init__(self, config: CloudWatchSinkConfig, *, name: str, instance: str) -> None:
        require("aws", feature="the CloudWatch audit sink")  # at start-up, not at the first record
        self.name = name
        self._config = config
        self._group = config.log_group
        self._stream = config.log_stream or instance
        self._client: CloudWatchLogsClient | None = None
        self._ready = False  # group and stream known to exist
        self._last_timestamp = 0

    async def start(self) -> None:
        return None  # the stream is created on the first write, so a down endpoint delays nothing

    async def write(self, entries: Sequence[Entry]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(self._put, entries)
        except (BotoCoreError, ClientError) as exc:
            raise SinkError(f"CloudWatch Logs {self._group}:{self._stream}: {exc}") from exc

    def _client_(self) -> CloudWatchLogsClient:
        if self._client is None:
            self._client = logs_client(
                region=self._config.region,
                endpoint_url=self._config.endpoint_url,
                connect_timeout=self._config.connect_timeout_seconds,
                read_timeout=self._config.read_timeout_seconds,
            )
        return self._client

    def _ensure_stream(self, client: CloudWatchLogsClient) -> None:
        if self._ready:
            return
        if self._config.create_log_group:
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_group(logGroupName=self._group)
        with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
            client.create_log_stream(logGroupName=self._group, logStreamName=self._stream)
        self._ready = True

    def _put(self, entries: Sequence[Entry]) -> None:
        client = self._client_()
        self._ensure_stream(client)
        now = int(datetime.now(UTC).timestamp() * 1000)
        self._last_timestamp = max(self._last_timestamp, now)
        events: list[InputLogEventTypeDef] = [
            {"timestamp": self._last_timestamp, "message": entry.line.decode()} for entry in entries
        ]
        response = client.put_log_events(
            logGroupName=self._group,
            logStreamName=self._stream,
            logEvents=events,
        )
        rejected = response.get("rejectedLogEventsInfo")
        if rejected:
            # Partly accepted: retrying the whole batch may repeat some, which readers skip.
            raise SinkError(f"CloudWatch Logs {self._group}:{self._stream} rejected events: {rejected}")

    async def close(self) -> None:
        return None
