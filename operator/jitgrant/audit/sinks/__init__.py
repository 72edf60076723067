"""Audit sinks, one module each. Cloud SDKs are imported only when such a sink is configured."""

from __future__ import annotations

from jitgrant.audit.config import (
    CloudWatchSinkConfig,
    FileSinkConfig,
    S3SinkConfig,
    SinkConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
)
from jitgrant.audit.sinks.base import Entry, Sink, SinkError

__all__ = ["Entry", "Sink", "SinkError", "build_sink"]


def build_sink(config: SinkConfig, *, name: str, instance: str) -> Sink:
    if isinstance(config, FileSinkConfig):
        from jitgrant.audit.sinks.file import FileSink

        return FileSink(config, name=name)
    if isinstance(config, StdoutSinkConfig):
        from jitgrant.audit.sinks.stdout import StdoutSink

        return StdoutSink(config, name=name)
    if isinstance(config, S3SinkConfig):
        from jitgrant.audit.sinks.s3 import S3Sink

        return S3Sink(config, name=name, instance=instance)
    if isinstance(config, CloudWatchSinkConfig):
        from jitgrant.audit.sinks.cloudwatch import CloudWatchSink

        return CloudWatchSink(config, name=name, instance=instance)
    if isinstance(config, WebhookSinkConfig):
        from jitgrant.audit.sinks.webhook import WebhookSink

        return WebhookSink(config, name=name)
    raise TypeError(f"unknown audit sink type {config!r}")
