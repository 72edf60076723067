"""Prometheus series of the operator, served on their own port.

Labels are bounded by what the platform team writes (policies, target clusters, audit sinks,
handler ids), never by who asks: no label per requester or per request, so a busy agent cannot
blow up the series count, and the metrics reveal nothing an audit reader would not already see.

`Metrics` owns its own `CollectorRegistry`, so each test gets fresh counters and two operators in
one process (the embedded cluster's tests) do not share series. The HTTP server is
prometheus_client's own, in a daemon thread: a scrape still answers while the event loop is stuck,
which is exactly when one wants to look.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Every outcome a request can be counted under; anything else is a programming error.
OUTCOMES: Final = frozenset(
    {"requested", "approved", "denied", "pending", "active", "expired", "revoked", "timed_out", "failed"}
)

# Grants last minutes; approvals minutes to hours.
_TIME_TO_ACTIVE_BUCKETS: Final = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_APPROVAL_WAIT_BUCKETS: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
# Phases a live request is counted in by jitgrant_requests_in_phase; terminal phases are not a
# "current" state worth a gauge (they are counted once, by outcome, in jitgrant_requests_total).
LIVE_PHASES: Final = ("Pending", "Approved", "Active")
#: Webhook answers: allowed, refused (an AdmissionError the caller sees), error (an exception).
WEBHOOK_OUTCOMES: Final = frozenset({"allowed", "refused", "error"})
# Admission calls must finish well inside the API server's timeout (10 s in the chart).
_WEBHOOK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Revocation lag should sit near zero: fine resolution up to a minute, then coarse to catch outages.
_REVOCATION_LAG_BUCKETS: Final = (
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0, 900.0,
)  # fmt: skip


class Metrics:
    """The operator's series; handlers call the methods, never prometheus_client directly."""

    def __init__(self, registry: CollectorRegistry | None = None, *, revision: str | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # process_* (CPU, memory, open files) and python_info, as on the default registry.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._build_info = Gauge(
            "jitgrant_build_info",
            "Always 1; the labels say which build runs.",
            ["version", "revision", "python"],
            registry=self.registry,
        )
        self._build_info.labels(
            version=_version(),
            revision=revision or os.environ.get("JITGRANT_REVISION", "") or "unknown",
            python=platform.python_version(),
        ).set(1)
        self._webhook_requests = Counter(
            "jitgrant_webhook_requests",
            "Admission requests answered, by webhook, operation, outcome and reason (a Kubernetes "
            "status reason for refusals and errors, empty when allowed).",
            ["webhook", "operation", "outcome", "reason"],
            registry=self.registry,
        )
        self._webhook_duration = Histogram(
            "jitgrant_webhook_request_duration_seconds",
            "Time to answer an admission request, by webhook and outcome.",
            ["webhook", "outcome"],
            buckets=_WEBHOOK_BUCKETS,
            registry=self.registry,
        )
        self._in_phase = Gauge(
            "jitgrant_requests_in_phase",
            "Live AccessRequests by policy and phase (Pending, Approved, Active), from the watch.",
            ["policy", "phase"],
            registry=self.registry,
        )
        self._phases: dict[str, tuple[str, str]] = {}
        self._requests = Counter(
            "jitgrant_requests",
            "AccessRequests by policy and outcome (each transition counted once).",
            ["policy", "outcome"],
            registry=self.registry,
        )
        self._active_grants = Gauge(
            "jitgrant_active_grants",
            "Grants whose RoleBinding currently exists, by target cluster.",
            ["cluster"],
            registry=self.registry,
        )
        self._time_to_active = Histogram(
            "jitgrant_request_to_active_seconds",
            "Time from an AccessRequest's creation until its grant was active.",
            ["policy"],
            buckets=_TIME_TO_ACTIVE_BUCKETS,
            registry=self.registry,
        )
        self._approval_wait = Histogram(
            "jitgrant_approval_wait_seconds",
            "Time a request waited for its approvals (until approved, denied or timed out).",
            ["policy"],
            buckets=_APPROVAL_WAIT_BUCKETS,
            registry=self.registry,
        )
        self._revocation_lag = Histogram(
            "jitgrant_revocation_lag_seconds",
            "When the RoleBinding was actually gone minus the grant's expiresAt.",
            ["cluster"],
            buckets=_REVOCATION_LAG_BUCKETS,
            registry=self.registry,
        )
        self._audit_failures = Counter(
            "jitgrant_audit_delivery_failures",
            "Failed attempts to deliver audit records to a sink (records stay spooled and are retried).",
            ["sink"],
            registry=self.registry,
        )
        self._agent_refused = Counter(
            "jitgrant_agent_refused_calls",
            "API calls refused by RBAC during grants, by the grant's policy (from activity-summary records).",
            ["policy"],
            registry=self.registry,
        )
        self._guardrail_refused = Counter(
            "jitgrant_guardrail_refusals",
            "Requests refused at admission by a guardrail (AlreadyRequested, LimitReached, PolicyRefused), "
            "by policy and reason; no per-identity label.",
            ["policy", "reason"],
            registry=self.registry,
        )
        self._spool_depth = Gauge(
            "jitgrant_audit_spool_depth",
            "Audit records accepted into the local spool and not yet delivered to every sink.",
            registry=self.registry,
        )
        self._reconcile_errors = Counter(
            "jitgrant_reconcile_errors",
            "Errors raised by operator handlers, by handler id.",
            ["handler"],
            registry=self.registry,
        )
        self._unproven = Gauge(
            "jitgrant_unproven_objects",
            "Objects carrying jitgrant's labels without its owner seal, seen by the last sweep: "
            "never touched, but someone made them look like jitgrant's.",
            ["cluster", "kind"],
            registry=self.registry,
        )
        self._overdue = Gauge(
            "jitgrant_removal_overdue_grants",
            "Grants past their expiresAt (or revoked) whose objects could not yet be removed from the "
            "cluster, by target cluster: the RemovalOverdue alert fires while this is above zero.",
            ["cluster"],
            registry=self.registry,
        )
        self._reachable = Gauge(
            "jitgrant_target_reachable",
            "1 while the last call to the target cluster (AWS or its API server) succeeded, 0 after a "
            "failure, by target cluster.",
            ["cluster"],
            registry=self.registry,
        )
        self._circuit = Gauge(
            "jitgrant_target_circuit_state",
            "The circuit breaker of each target cluster: 0 closed (calls go through), 1 half-open (one "
            "probe out), 2 open (calls fail fast without a thread or a socket until the next probe).",
            ["cluster"],
            registry=self.registry,
        )
        self._unapproved_dangerous = Gauge(
            "jitgrant_policy_dangerous_identities_without_approval",
            "Distinct identities (requester subjects and groups) a GrantPolicy lets obtain a dangerous "
            "permission without approval, per dangerous entry (secrets, pods/exec, *, ...).",
            ["policy", "permission"],
            registry=self.registry,
        )
        self._exposure_labels: dict[str, set[str]] = {}
        self._active: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sinks = _SinkHealth()
        self.registry.register(self._sinks)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # Requests

    def request_outcome(self, *, policy: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown request outcome {outcome!r} (known: {', '.join(sorted(OUTCOMES))})")
        self._requests.labels(policy=policy, outcome=outcome).inc()

    def observe_time_to_active(self, *, policy: str, seconds: float) -> None:
        self._time_to_active.labels(policy=policy).observe(max(seconds, 0.0))

    def observe_approval_wait(self, *, policy: str, seconds: float) -> None:
        self._approval_wait.labels(policy=policy).observe(max(seconds, 0.0))

    def track_request(self, key: str, *, policy: str, phase: str | None) -> None:
        """Count the request `key` (a uid; never a label) under its current phase, moving it out of
        the one it was counted in before. A terminal or unknown phase just stops counting it."""
        with self._lock:
            before = self._phases.pop(key, None)
            if before is not None:
                self._in_phase.labels(policy=before[0], phase=before[1]).dec()
            if phase in LIVE_PHASES:
                self._phases[key] = (policy, phase)
                self._in_phase.labels(policy=policy, phase=phase).inc()

    def forget_request(self, key: str) -> None:
        self.track_request(key, policy="", phase=None)

    # Webhooks

    def observe_webhook(
        self, *, webhook: str, operation: str, outcome: str, reason: str, seconds: float
    ) -> None:
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError(
                f"unknown webhook outcome {outcome!r} (known: {', '.join(sorted(WEBHOOK_OUTCOMES))})"
            )
        self._webhook_requests.labels(
            webhook=webhook, operation=operation or "", outcome=outcome, reason=reason
        ).inc()
        self._webhook_duration.labels(webhook=webhook, outcome=outcome).observe(max(seconds, 0.0))

    # Grants

    def set_active_grants(self, *, cluster: str, count: int) -> None:
        """Set the gauge from a full count (the start-up and periodic sweep), correcting any drift."""
        if count < 0:
            raise ValueError(f"active grant count cannot be negative, got {count}")
        self._update_active(cluster, lambda _: count)

    def grant_activated(self, cluster: str) -> None:
        self._update_active(cluster, lambda n: n + 1)

    def grant_ended(self, cluster: str) -> None:
        # Never below zero: an end seen twice (a retried handler) must not invent negative grants.
        # The next sweep's set_active_grants() restores the exact count either way.
        self._update_active(cluster, lambda n: max(n - 1, 0))

    def _update_active(self, cluster: str, change: Callable[[int], int]) -> None:
        with self._lock:
            count = self._active[cluster] = change(self._active.get(cluster, 0))
            self._active_grants.labels(cluster=cluster).set(count)

    def observe_revocation_lag(self, *, cluster: str, seconds: float) -> None:
        """Observe how late a binding was removed; an early removal (clock skew) counts as zero."""
        self._revocation_lag.labels(cluster=cluster).observe(max(seconds, 0.0))

    # Audit

    def audit_delivery_failed(self, *, sink: str) -> None:
        self._audit_failures.labels(sink=sink).inc()

    def guardrail_refused(self, *, policy: str, reason: str) -> None:
        self._guardrail_refused.labels(policy=policy, reason=reason).inc()

    def agent_calls_refused(self, *, policy: str, count: int) -> None:
        """Refused calls of one ended grant: an agent hammering at the edge of its grant shows here."""
        self._agent_refused.labels(policy=policy).inc(count)

    def watch_audit_sinks(
        self,
        *,
        last_errors: Callable[[], Mapping[str, str | None]],
        undelivered: Callable[[], Mapping[str, int]],
    ) -> None:
        """Read each sink's health at scrape time: jitgrant_audit_sink_up (0 while its last delivery
        failed) and jitgrant_audit_sink_undelivered (entries it has not accepted yet)."""
        self._sinks.last_errors, self._sinks.undelivered = last_errors, undelivered

    def set_audit_spool_depth(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"spool depth cannot be negative, got {n}")
        self._spool_depth.set(n)

    # Handlers

    def set_unproven_objects(self, *, cluster: str, kind: str, count: int) -> None:
        self._unproven.labels(cluster=cluster, kind=kind).set(count)

    def set_removal_overdue(self, *, cluster: str, count: int) -> None:
        self._overdue.labels(cluster=cluster).set(count)

    def set_target_reachable(self, *, cluster: str, reachable: bool) -> None:
        self._reachable.labels(cluster=cluster).set(1 if reachable else 0)

    def set_target_circuit(self, *, cluster: str, state: int) -> None:
        self._circuit.labels(cluster=cluster).set(state)

    def set_policy_exposure(self, *, policy: str, counts: Mapping[str, int]) -> None:
        """The policy's dangerous-without-approval counts now; entries it no longer has are removed
        (an empty mapping, e.g. for a deleted policy, removes them all)."""
        with self._lock:
            before = self._exposure_labels.pop(policy, set())
            for permission in before - set(counts):
                self._unapproved_dangerous.remove(policy, permission)
            for permission, count in counts.items():
                self._unapproved_dangerous.labels(policy=policy, permission=permission).set(count)
            if counts:
                self._exposure_labels[policy] = set(counts)

    def reconcile_error(self, *, handler: str) -> None:
        self._reconcile_errors.labels(handler=handler).inc()

    # Exposition

    def render(self) -> bytes:
        """The current exposition, in the Prometheus text format."""
        return generate_latest(self.registry)

    def start_server(self, *, host: str, port: int) -> int:
        """Serve /metrics on host:port in a daemon thread; returns the bound port (0 = ephemeral)."""
        if self._server is not None:
            raise RuntimeError(f"metrics server already listening on port {self._server.server_port}")
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def stop_server(self) -> None:
        """Stop the server started by start_server(); harmless if none runs."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jitgrant")
    except PackageNotFoundError:  # run from a source tree without an install
        return "unknown"


class _SinkHealth(Collector):
    """Per-sink health, asked of the audit trail when Prometheus scrapes (no series before that)."""

    def __init__(self) -> None:
        self.last_errors: Callable[[], Mapping[str, str | None]] = dict
        self.undelivered: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "jitgrant_audit_sink_up",
            "1 when the sink's last delivery succeeded (or none failed yet), 0 while it is failing.",
            labels=["sink"],
        )
        pending = GaugeMetricFamily(
            "jitgrant_audit_sink_undelivered",
            "Entries (records and checkpoints) the sink has not accepted yet.",
            labels=["sink"],
        )
        # Read from the scrape thread: copies, so a delivery changing the dicts cannot break them.
        for sink, error in dict(self.last_errors()).items():
            up.add_metric([sink], 0.0 if error else 1.0)
        for sink, count in dict(self.undelivered()).items():
            pending.add_metric([sink], float(count))
        yield up
        yield pending

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
