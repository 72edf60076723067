"""Reading a trail back from where the sinks put it, for `audit verify` and `audit query`.

Each reader returns the stored lines in storage order, byte for byte, so that verification hashes
what is actually stored rather than a re-serialised copy.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from jitgrant.audit.chain import StoredLine
from jitgrant.audit.sinks._aws import logs_client, s3_client
from jitgrant.extras import MissingExtra


class ReadError(Exception):
    """The trail could not be read at all (as opposed to read and found wrong)."""


def read_file(path: Path) -> list[StoredLine]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return [
        StoredLine(f"{path}:{number}", line)
        for number, line in enumerate(data.split(b"\n"), start=1)
        if line.strip()
    ]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ReadError(f"not an S3 URI (s3://bucket/prefix/): {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_s3(uri: str, *, endpoint_url: str | None = None, region: str | None = None) -> list[StoredLine]:
    """Every version of every object under the prefix, in key order, oldest version first.

    Reading versions, not just the latest, is what exposes an object overwritten in a versioned
    (Object Lock) bucket: the original stays, next to the replacement.
    """
    bucket, prefix = parse_s3_uri(uri)
    try:
        client = s3_client(region=region, endpoint_url=endpoint_url)
    except MissingExtra as exc:
        raise ReadError(str(exc)) from exc
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        versions: list[tuple[str, str, str]] = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                modified = version["LastModified"].isoformat()
                versions.append((version["Key"], modified, version.get("VersionId") or "null"))
        versions.sort()
        lines: list[StoredLine] = []
        for key, _, version_id in versions:
            if version_id == "null":  # an unversioned bucket
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                location = f"s3://{bucket}/{key}"
            else:
                body = client.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
                location = f"s3://{bucket}/{key}?versionId={version_id}"
            lines.extend(StoredLine(location, line) for line in body.split(b"\n") if line.strip())
        return lines
    except (BotoCoreError, ClientError) as exc:
        raise ReadError(f"cannot read s3://{bucket}/{prefix}: {exc}") from exc


def parse_cloudwatch(spec: str) -> tuple[str, str]:
    group, sep, stream = spec.partition(":")
    if not sep or not group or not stream:
        raise ReadError(f"expected LOG_GROUP:LOG_STREAM, got {spec!r}")
    return group, stream


def read_cloudwatch(
    spec: str, *, endpoint_url: str | None = None, region: str | None = None
) -> list[StoredLine]:
    group, stream = parse_cloudwatch(spec)
    try:
        client = logs_client(region=region, endpoint_url=endpoint_url)
    except MissingExtra as exc:
        raise ReadError(str(exc)) from exc
    from botocore.exceptions import BotoCoreError, ClientError

    lines: list[StoredLine] = []
    token: str | None = None
    try:
        while True:
            if token is None:
                page = client.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
            else:
                page = client.get_log_events(
                    logGroupName=group, logStreamName=stream, startFromHead=True, nextToken=token
                )
            for event in page.get("events", []):
                location = f"{group}:{stream} event {len(lines) + 1} @{event.get('timestamp')}"
                lines.append(StoredLine(location, event.get("message", "").encode()))
            next_token = page.get("nextForwardToken")
            # The API signals the end by handing back the token it was given.
            if not next_token or next_token == token:
                return lines
            token = next_token
    except (BotoCoreError, ClientError) as exc:
        raise ReadError(f"cannot read CloudWatch Logs {group}:{stream}: {exc}") from exc
