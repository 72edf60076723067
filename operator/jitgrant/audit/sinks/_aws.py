"""boto3 clients for the AWS sinks and readers: short timeouts, few retries, region from config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jitgrant.extras import require

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client


def _config(*, connect_timeout: float, read_timeout: float) -> Config:
    from botocore.config import Config

    # The trail retries on its own, with backoff; botocore's retries would only hide an outage.
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": 2, "mode": "standard"},
    )


def s3_client(
    *, region: str | None, endpoint_url: str | None, connect_timeout: float = 3.0, read_timeout: float = 10.0
) -> S3Client:
    require("aws", feature="the S3 audit sink and reader")
    import boto3

    return boto3.session.Session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        config=_config(connect_timeout=connect_timeout, read_timeout=read_timeout),
    )


def logs_client(
    *, region: str | None, endpoint_url: str | None, connect_timeout: float = 3.0, read_timeout: float = 10.0
) -> CloudWatchLogsClient:
    require("aws", feature="the CloudWatch audit sink and reader")
    import boto3

    return boto3.session.Session().client(
        "logs",
        region_name=region,
        endpoint_url=endpoint_url,
        config=_config(connect_timeout=connect_timeout, read_timeout=read_timeout),
    )
