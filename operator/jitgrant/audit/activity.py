"""The `activity-summary` record: when a grant ends, what its identity did, chained into the trail.

The trail schedules it itself when it records an `expired` or `revoked` event of a grant (so the
handlers need not know), after `activity.delaySeconds` (the API server's log may arrive late: about
a minute on EKS), reading the cluster's audit log with the source configured for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from jitgrant.activity.attribution import GrantIdentity, activity
from jitgrant.activity.grant import service_account_username
from jitgrant.activity.sources import AuditLogFiles, AuditSource, CloudWatchAuditLogs, SourceError, Window
from jitgrant.activity.summary import summarize
from jitgrant.audit.config import ActivityConfig, ActivitySourceConfig, AuditLogActivityConfig
from jitgrant.audit.records import ActivityRecord, AuditEvent, EventType
from jitgrant.models import cluster_name_of

#: The events that end a grant and so call for a summary of what it was used for.
ENDING_EVENTS = frozenset({EventType.EXPIRED, EventType.REVOKED})


def build_source(config: ActivitySourceConfig) -> AuditSource:
    if isinstance(config, AuditLogActivityConfig):
        return AuditLogFiles(Path(config.path))
    return CloudWatchAuditLogs(
        cluster=config.eks_cluster,
        region=config.region,
        endpoint_url=config.endpoint_url,
        log_group=config.log_group,
    )


def grant_identity(event: AuditEvent) -> GrantIdentity | None:
    """The ended grant's binding, identities and window, as far as its audit event tells them.

    The per-grant ServiceAccount (agents that receive a kubeconfig) shares the RoleBinding's name,
    so it is a candidate too; the requester covers an in-cluster agent's own ServiceAccount.
    """
    window, scope = event.window, event.scope
    if event.type not in ENDING_EVENTS or not event.binding or scope is None or window is None:
        return None
    if window.activated_at is None:
        return None
    usernames = {service_account_username(scope.namespace, event.binding)}
    if event.requester is not None:
        usernames.add(event.requester.username)
    return GrantIdentity(
        binding_name=event.binding,
        binding_namespace=scope.namespace,
        usernames=frozenset(usernames),
        start=window.activated_at,
        end=window.ended_at or event.time,
    )


def read_summary(source: AuditSource, grant: GrantIdentity, *, now: datetime) -> ActivityRecord:
    """Reads and counts the grant's calls; a log that cannot be read is recorded as such."""
    terms = frozenset({*grant.usernames, grant.binding_name})
    try:
        calls = activity(source.calls(Window(start=grant.start, end=grant.end, terms=terms)), grant)
    except SourceError as exc:
        return ActivityRecord(source=source.name, read_at=now, error=str(exc))
    summary = summarize(calls)
    return ActivityRecord(
        source=source.name,
        read_at=now,
        calls=summary.calls,
        allowed_by_grant=summary.allowed_by_grant,
        allowed_otherwise=summary.allowed_otherwise,
        refused=summary.refused,
        exact=summary.exact,
        by_verb=dict(summary.by_verb),
        by_resource=dict(summary.by_resource),
        refused_by_resource=dict(summary.refused_by_resource),
        first_call=summary.first_call,
        last_call=summary.last_call,
    )


def summary_event(ended: AuditEvent, record: ActivityRecord) -> AuditEvent:
    """The grant's ending event, retyped, at the time the log was read, with the counts."""
    return ended.model_copy(
        update={
            "type": EventType.ACTIVITY_SUMMARY,
            "time": record.read_at,
            "activity": record,
            "decision": None,
            "reason": record.error,
            "approvers": (),
        }
    )


class ActivityReader:
    """Which source serves which cluster, and the summary of one ended grant."""

    def __init__(
        self, config: ActivityConfig, *, build: Callable[[ActivitySourceConfig], AuditSource] = build_source
    ):
        self.config = config
        self._sources = {cluster: build(source) for cluster, source in config.sources.items()}

    @property
    def delay_seconds(self) -> float:
        return self.config.delay_seconds

    def _source(self, cluster: str) -> AuditSource | None:
        # Records name an EKS cluster by ARN; a source may be configured under the ARN or the name.
        return self._sources.get(cluster) or self._sources.get(cluster_name_of(cluster))

    def source_for(self, cluster: str) -> AuditSource | None:
        """The audit log source of one target cluster (the idle end reads it too), or None."""
        return self._source(cluster)

    def wants(self, event: AuditEvent) -> GrantIdentity | None:
        if self._source(event.cluster) is None:
            return None
        return grant_identity(event)

    def summary(self, event: AuditEvent, grant: GrantIdentity, *, now: datetime) -> AuditEvent:
        source = self._source(event.cluster)
        assert source is not None  # wants() said so
        return summary_event(event, read_summary(source, grant, now=now))
