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
    if isinstance(config, S3SinkConfig | CloudWatchSinkConfig | WebhookSinkConfig):
        raise NotImplementedError(f"audit sink type {config.type!r} is not available yet")
    raise TypeError(f"unknown audit sink type {config!r}")
