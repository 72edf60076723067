"""Every series the operator exports, read back through a real HTTP scrape of start_server()."""

from __future__ import annotations

import math
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from jitgrant.metrics import OUTCOMES, Metrics

from .conftest import scrape, value


def scrape_registry(metrics: Metrics) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    ]


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
    metrics.track_request("0b5e-uid", policy="p", phase="Active")
    metrics.observe_webhook(webhook="w", operation="CREATE", outcome="allowed", reason="", seconds=0.01)
    metrics.watch_audit_sinks(last_errors=lambda: {"s": None}, undelivered=lambda: {"s": 0})

    samples = scrape(port)
    labels = {label for s in samples if s.name.startswith("jitgrant_") for label in s.labels}
    assert labels == {
        "policy", "outcome", "cluster", "sink", "handler", "le", "phase", "webhook", "operation", "reason",
        "version", "revision", "python",
    }  # fmt: skip
    # The request's uid is only the key of the phase count, never a label value.
    assert not [s for s in samples if "0b5e-uid" in s.labels.values()]


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


def test_build_info_names_version_revision_and_python() -> None:
    import platform
    from importlib.metadata import version

    samples = [s for s in scrape_registry(Metrics(revision="abc1234")) if s.name == "jitgrant_build_info"]
    assert [(s.labels, s.value) for s in samples] == [
        ({"version": version("jitgrant"), "revision": "abc1234", "python": platform.python_version()}, 1.0)
    ]


def test_the_process_collector_is_on_the_operators_own_registry(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    samples = scrape(port)
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0
    assert [s for s in samples if s.name == "python_info"]


def test_requests_are_counted_in_their_current_phase_only(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    metrics.track_request("a", policy="prod", phase="Pending")
    metrics.track_request("b", policy="prod", phase="Pending")
    metrics.track_request("c", policy="oncall", phase="Active")
    metrics.track_request("a", policy="prod", phase="Approved")
    metrics.track_request("a", policy="prod", phase="Active")
    metrics.track_request("b", policy="prod", phase="Denied")  # terminal: no longer counted
    metrics.track_request("c", policy="oncall", phase="Active")  # the same phase again counts once

    samples = scrape(port)
    assert value(samples, "jitgrant_requests_in_phase", policy="prod", phase="Active") == 1
    assert value(samples, "jitgrant_requests_in_phase", policy="prod", phase="Pending") == 0
    assert value(samples, "jitgrant_requests_in_phase", policy="prod", phase="Approved") == 0
    assert value(samples, "jitgrant_requests_in_phase", policy="oncall", phase="Active") == 1
    metrics.forget_request("c")
    metrics.forget_request("never-seen")
    assert value(scrape(port), "jitgrant_requests_in_phase", policy="oncall", phase="Active") == 0


def test_webhook_answers_are_timed_and_counted_by_outcome_and_reason(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    metrics.observe_webhook(
        webhook="validate-request", operation="CREATE", outcome="refused", reason="Forbidden", seconds=0.02
    )
    metrics.observe_webhook(
        webhook="validate-request", operation="CREATE", outcome="allowed", reason="", seconds=0.004
    )
    with pytest.raises(ValueError, match="unknown webhook outcome 'denied'"):
        metrics.observe_webhook(webhook="w", operation="CREATE", outcome="denied", reason="", seconds=0)

    samples = scrape(port)
    refused = {
        "webhook": "validate-request",
        "operation": "CREATE",
        "outcome": "refused",
        "reason": "Forbidden",
    }
    assert value(samples, "jitgrant_webhook_requests_total", **refused) == 1
    bucket = {"webhook": "validate-request", "outcome": "allowed", "le": "0.005"}
    assert value(samples, "jitgrant_webhook_request_duration_seconds_bucket", **bucket) == 1
    bucket = {"webhook": "validate-request", "outcome": "refused", "le": "0.01"}
    assert value(samples, "jitgrant_webhook_request_duration_seconds_bucket", **bucket) == 0


def test_audit_sink_health_is_read_at_scrape_time(metrics: Metrics) -> None:
    port = metrics.start_server(host="127.0.0.1", port=0)
    errors: dict[str, str | None] = {"s3": None, "siem": "HTTP 503"}
    backlog = {"s3": 0, "siem": 12}
    metrics.watch_audit_sinks(last_errors=lambda: errors, undelivered=lambda: backlog)

    samples = scrape(port)
    assert value(samples, "jitgrant_audit_sink_up", sink="s3") == 1
    assert value(samples, "jitgrant_audit_sink_up", sink="siem") == 0
    assert value(samples, "jitgrant_audit_sink_undelivered", sink="siem") == 12
    errors["siem"], backlog["siem"] = None, 0
    samples = scrape(port)
    assert value(samples, "jitgrant_audit_sink_up", sink="siem") == 1
    assert value(samples, "jitgrant_audit_sink_undelivered", sink="siem") == 0
