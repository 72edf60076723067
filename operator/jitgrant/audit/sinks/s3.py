"""S3 with Object Lock: one object per entry, each with its own retention.

Keys: `<prefix><instance>/records/<seq>.json` and `<prefix><instance>/checkpoints/<seq>-<µs>.json`,
so a listing is in chain order. With COMPLIANCE retention nobody, the account root included, can
delete or overwrite an object version before it expires; a new PUT to a key only adds a version,
which the reader sees too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jitgrant.audit.config import S3SinkConfig
from jitgrant.audit.records import record_key_hash
from jitgrant.audit.sinks._aws import s3_client
from jitgrant.audit.sinks.base import Entry, SinkError
from jitgrant.extras import require

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def object_prefix(prefix: str, instance: str) -> str:
    return f"{prefix.strip('/')}/{instance}/" if prefix.strip("/") else f"{instance}/"


def object_key(base: str, entry: Entry) -> str:
    if entry.kind == "record":
        return f"{base}records/{entry.seq:020d}.json"
    return f"{base}checkpoints/{entry.key[:20]}-{entry.key[-20:]}.json"


class S3Sink:
    def __init__(self, config: S3SinkConfig, *, name: str, instance: str) -> None:
        require("aws", feature="the S3 audit sink")  # at start-up, not at the first record
        self.name = name
        self._config = config
        self._base = object_prefix(config.prefix, instance)
        self._client: S3Client | None = None
        # After a failed batch some objects may exist already: check before writing them again,
        # so a retry adds no extra object versions.
        self._check_existing = False

    async def start(self) -> None:
        return None

    async def write(self, entries: Sequence[Entry]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(self._put_all, entries)
        except (BotoCoreError, ClientError) as exc:
            self._check_existing = True
            raise SinkError(f"s3://{self._config.bucket}/{self._base}: {exc}") from exc

    def _client_(self) -> S3Client:
        if self._client is None:
            self._client = s3_client(
                region=self._config.region,
                endpoint_url=self._config.endpoint_url,
                connect_timeout=self._config.connect_timeout_seconds,
                read_timeout=self._config.read_timeout_seconds,
            )
        return self._client

    def _put_all(self, entries: Sequence[Entry]) -> None:
        client = self._client_()
        for entry in entries:
            key = object_key(self._base, entry)
            digest = record_key_hash(entry.line)
            if self._check_existing and self._stored(client, key, digest):
                continue
            extra: dict[str, Any] = {}
            if self._config.retention_mode is not None:
                extra["ObjectLockMode"] = self._config.retention_mode
                extra["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                    days=self._config.retention_days
                )
            client.put_object(
                Bucket=self._config.bucket,
                Key=key,
                Body=entry.line + b"\n",
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",  # Object Lock requires an integrity checksum on PUT
                Metadata={"jitgrant-sha256": digest},
                **extra,
            )
        self._check_existing = False

    def _stored(self, client: S3Client, key: str, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = client.head_object(Bucket=self._config.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return head.get("Metadata", {}).get("jitgrant-sha256") == digest

    async def close(self) -> None:
        return None
