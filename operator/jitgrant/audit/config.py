"""Audit settings, written by the platform team (Helm values) and loaded once at start-up.

Secrets are never inline: the webhook's bearer token and HMAC key and the checkpoint signing key
are read from files (mounted Secrets), so they never appear in a config dump or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _SinkConfig(_Config):
    #: Names the sink's queue in the spool; defaults to "<type>-<position>". Keep it stable across
    #: restarts, or records queued for the old name wait for a sink that no longer exists.
    name: str | None = None


class FileSinkConfig(_SinkConfig):
    type: Literal["file"] = "file"
    path: Path
    fsync: bool = True


class StdoutSinkConfig(_SinkConfig):
    type: Literal["stdout"] = "stdout"


class _AwsSinkConfig(_SinkConfig):
    region: str | None = None
    endpoint_url: str | None = None  # for moto or a VPC endpoint
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 10.0


class S3SinkConfig(_AwsSinkConfig):
    type: Literal["s3"] = "s3"
    bucket: str
    prefix: str = "jitgrant-audit/"
    #: Object Lock retention set on every object. COMPLIANCE: nobody, root included, can delete or
    #: shorten it; GOVERNANCE: principals with s3:BypassGovernanceRetention can. None: bucket default.
    retention_mode: Literal["COMPLIANCE", "GOVERNANCE"] | None = "COMPLIANCE"
    retention_days: int = Field(default=400, ge=1)


class CloudWatchSinkConfig(_AwsSinkConfig):
    type: Literal["cloudwatch"] = "cloudwatch"
    log_group: str
    #: Defaults to the operator instance name: one stream per instance.
    log_stream: str | None = None
    create_log_group: bool = False


class WebhookSinkConfig(_SinkConfig):
    type: Literal["webhook"] = "webhook"
    url: str
    bearer_token_file: Path | None = None
    hmac_secret_file: Path | None = None
    signature_header: str = "X-Jitgrant-Signature"
    timeout_seconds: float = 10.0
    ca_file: Path | None = None


SinkConfig = Annotated[
    FileSinkConfig | StdoutSinkConfig | S3SinkConfig | CloudWatchSinkConfig | WebhookSinkConfig,
    Field(discriminator="type"),
]


class AuditLogActivityConfig(_Config):
    """A kube-apiserver audit log the operator can read (`--audit-log-path`, mounted into its pod)."""

    type: Literal["file"] = "file"
    path: Path


class CloudWatchActivityConfig(_Config):
    """EKS control-plane audit logs: `/aws/eks/<eksCluster>/cluster` in CloudWatch Logs."""

    type: Literal["cloudwatch"] = "cloudwatch"
    eks_cluster: str
    log_group: str | None = None
    region: str | None = None
    endpoint_url: str | None = None


ActivitySourceConfig = Annotated[
    AuditLogActivityConfig | CloudWatchActivityConfig, Field(discriminator="type")
]


class ActivityConfig(_Config):
    """Where each target cluster's API server audit log is, for the `activity-summary` record."""

    #: Keyed by the cluster name the trail uses (a policy's target cluster, "self" for in-cluster).
    sources: dict[str, ActivitySourceConfig] = Field(min_length=1)
    #: How long after a grant ends the log is read: EKS delivers audit events to CloudWatch Logs
    #: with a delay of about a minute, so a summary read at once could miss the last calls.
    delay_seconds: float = Field(default=90.0, ge=0)


class AuditConfig(_Config):
    sinks: tuple[SinkConfig, ...] = Field(min_length=1)
    #: Must survive a restart (a PersistentVolume in production): it holds undelivered records and
    #: the chain's head, without which the chain could not continue.
    spool_dir: Path
    checkpoint_interval_seconds: float = Field(default=300.0, gt=0)
    #: PEM Ed25519 private key. Without one no checkpoints are written, and a verifier can then
    #: detect edits inside the chain but not a rewrite of the whole chain nor a truncation.
    signing_key_path: Path | None = None
    #: What must hold before `record_before_grant` returns: "spool" (fsynced to the local spool, the
    #: default) or "sinks" (delivered to every sink within `acceptance_timeout_seconds`).
    acceptance: Literal["spool", "sinks"] = "spool"
    acceptance_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_initial_seconds: float = Field(default=0.5, gt=0)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=100, ge=1)
    #: How long `close()` keeps trying to deliver before leaving the rest in the spool.
    close_timeout_seconds: float = Field(default=5.0, ge=0)
    #: With it, an `activity-summary` record follows each grant's end (see docs/audit.md).
    activity: ActivityConfig | None = None

    @model_validator(mode="after")
    def _unique_sink_names(self) -> AuditConfig:
        names = self.sink_names()
        if len(set(names)) != len(names):
            raise ValueError(f"audit sink names must be unique, got {names}")
        return self

    def sink_names(self) -> list[str]:
        return [sink.name or f"{sink.type}-{index}" for index, sink in enumerate(self.sinks)]
