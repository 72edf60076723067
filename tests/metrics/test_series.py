"""Every series the operator exports, read back through a real HTTP scrape of start_server()."""

from __future__ import annotations

import math
import urllib.error
import urllib.request

import pytest

from jitgrant.metrics import OUTCOMES, Metrics

from .conftest import scrape, value


def test_request_outcomes_are_counted_per_policy_and_outcome(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    for _ in range(3):
        metrics.request_outcome(policy="oncall-restart", outcome="requested")
    metrics.request_outcome(policy="oncall-restart", outcome="active")
    metrics.request_outcome(policy="read-logs", outcome="denied")

    samples = scrape(port)
    assert value(samples, "jitgrant_requests_total", policy="oncall-restart", outcome="requested") == 3
    assert value(samples, "jitgrant_requests_total", policy="oncall-restart", outcome="active") == 1
    assert value(samples, "jitgrant_requests_total", policy="read-logs", outcome="denied") == 1
    outcomes = {s.labels["outcome"] for s in samples if s.name == "jitgrant_requests_total"}
    assert outcomes == {"requested", "active", "denied"}


def test_every_documented_outcome_is_accepted_and_others_refused(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    for outcome in sorted(OUTCOMES):
        metrics.request_outcome(policy="p", outcome=outcome)
    with pytest.raises(ValueError, match="unknown request outcome 'approve'"):
        metrics.request_outcome(policy="p", outcome="approve")

    samples = scrape(port)
    assert {s.labels["outcome"] for s in samples if s.name == "jitgrant_requests_total"} == set(OUTCOMES)
    assert {
        "requested", "approved", "denied", "pending", "active", "expired", "revoked", "timed_out", "failed"
    } == OUTCOMES  # fmt: skip


def test_active_grants_follow_activations_ends_and_sweeps(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    metrics.grant_activated("prod-eu")
    metrics.grant_activated("prod-eu")
    metrics.grant_activated("staging")
    metrics.grant_ended("prod-eu")
    assert value(scrape(port), "jitgrant_active_grants", cluster="prod-eu") == 1
    assert value(scrape(port), "jitgrant_active_grants", cluster="staging") == 1

    metrics.grant_ended("staging")
    metrics.grant_ended("staging")  # seen twice (a retried handler): never negative
    assert value(scrape(port), "jitgrant_active_grants", cluster="staging") == 0

    metrics.set_active_grants(cluster="prod-eu", count=7)  # the sweep's full count wins
    metrics.grant_activated("prod-eu")
    assert value(scrape(port), "jitgrant_active_grants", cluster="prod-eu") == 8
    with pytest.raises(ValueError, match="negative"):
        metrics.set_active_grants(cluster="prod-eu", count=-1)


def test_time_to_active_and_approval_wait_are_histograms_per_policy(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    metrics.observe_time_to_active(policy="oncall-restart", seconds=0.8)
    metrics.observe_time_to_active(policy="oncall-restart", seconds=42.0)
    metrics.observe_approval_wait(policy="oncall-restart", seconds=240.0)

    samples = scrape(port)
    name = "jitgrant_request_to_active_seconds"
    assert value(samples, f"{name}_count", policy="oncall-restart") == 2
    assert value(samples, f"{name}_sum", policy="oncall-restart") == pytest.approx(42.8)
    assert value(samples, f"{name}_bucket", policy="oncall-restart", le="1.0") == 1
    assert value(samples, f"{name}_bucket", policy="oncall-restart", le="60.0") == 2
    wait = "jitgrant_approval_wait_seconds"
    assert value(samples, f"{wait}_count", policy="oncall-restart") == 1
    assert value(samples, f"{wait}_sum", policy="oncall-restart") == 240.0
    assert value(samples, f"{wait}_bucket", policy="oncall-restart", le="120.0") == 0
    assert value(samples, f"{wait}_bucket", policy="oncall-restart", le="300.0") == 1


def test_revocation_lag_has_fine_buckets_below_a_minute(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    for seconds in (0.05, 0.4, 1.5, 12.0, 50.0, 400.0, -2.0):
        metrics.observe_revocation_lag(cluster="prod-eu", seconds=seconds)

    samples = scrape(port)
    name = "jitgrant_revocation_lag_seconds"
    bounds = sorted(
        float(s.labels["le"]) for s in samples if s.name == f"{name}_bucket" and s.labels["le"] != "+Inf"
    )
    assert len([b for b in bounds if b <= 60]) >= 10, bounds
    assert value(samples, f"{name}_count", cluster="prod-eu") == 7
    # -2 s (a binding gone before expiresAt, clock skew) counts as zero lag, not negative lag.
    assert value(samples, f"{name}_sum", cluster="prod-eu") == pytest.approx(0.05 + 0.4 + 1.5 + 12 + 50 + 400)
    assert value(samples, f"{name}_bucket", cluster="prod-eu", le="0.1") == 2
    assert value(samples, f"{name}_bucket", cluster="prod-eu", le="60.0") == 6
    assert value(samples, f"{name}_bucket", cluster="prod-eu", le="+Inf") == 7


def test_audit_failures_spool_depth_and_reconcile_errors(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    assert value(scrape(port), "jitgrant_audit_spool_depth") == 0  # present before the first record

    metrics.audit_delivery_failed(sink="s3-0")
    metrics.audit_delivery_failed(sink="s3-0")
    metrics.audit_delivery_failed(sink="webhook-1")
    metrics.set_audit_spool_depth(17)
    metrics.reconcile_error(handler="activate-grant")

    samples = scrape(port)
    assert value(samples, "jitgrant_audit_delivery_failures_total", sink="s3-0") == 2
    assert value(samples, "jitgrant_audit_delivery_failures_total", sink="webhook-1") == 1
    assert value(samples, "jitgrant_audit_spool_depth") == 17
    assert value(samples, "jitgrant_reconcile_errors_total", handler="activate-grant") == 1
    metrics.set_audit_spool_depth(0)
    assert value(scrape(port), "jitgrant_audit_spool_depth") == 0
    with pytest.raises(ValueError, match="negative"):
        metrics.set_audit_spool_depth(-1)


def test_no_series_carries_a_requester_or_request_label(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    metrics.request_outcome(policy="p", outcome="requested")
    metrics.grant_activated("c")
    metrics.observe_time_to_active(policy="p", seconds=1)
    metrics.observe_approval_wait(policy="p", seconds=1)
    metrics.observe_revocation_lag(cluster="c", seconds=1)
    metrics.audit_delivery_failed(sink="s")
    metrics.reconcile_error(handler="h")

    labels = {label for s in scrape(port) if s.name.startswith("jitgrant_") for label in s.labels}
    assert labels == {"policy", "outcome", "cluster", "sink", "handler", "le"}


def test_registries_are_private_to_each_instance() -> None:
    first, second = Metrics(), Metrics()
    first.request_outcome(policy="p", outcome="requested")
    assert b'jitgrant_requests_total{outcome="requested",policy="p"} 1.0' in first.render()
    assert b"jitgrant_requests_total{" not in second.render()


def test_server_binds_an_ephemeral_port_and_stops(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    assert port > 0
    with pytest.raises(RuntimeError, match="already listening"):
        metrics.start_server(host="127.0.0.1", port=0)
    assert math.isclose(value(scrape(port), "jitgrant_audit_spool_depth"), 0)

    metrics.stop_server()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
