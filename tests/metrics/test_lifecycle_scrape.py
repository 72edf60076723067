"""After a lifecycle in the embedded cluster (the real operator over HTTP), a scrape of the
operator's metrics endpoint shows each transition once, with the right labels and values."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from prometheus_client.samples import Sample

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import scrape, value

T = TypeVar("T")


def wait_for_phase(env: Environment, name: str, phase: str, *, timeout: float = 20.0) -> dict[str, Any]:
    return env.wait_for_phase("agents", name, phase, timeout=timeout)


def request(
    name: str, *, policy: str = "oncall-restart", namespace: str = "payments", duration: str
) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": policy,
            "namespace": namespace,
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-7 stuck pods",
        },
    }


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        environment.apply(load_manifests(EXAMPLES / "prod-approval" / "policy.yaml"))
        environment.create_deployment("payments", "checkout")
        environment.allow_to_request("agents", service_account="oncall-agent")
        yield environment


def requests_by_outcome(samples: list[Sample]) -> dict[tuple[str, str], float]:
    return {
        (s.labels["policy"], s.labels["outcome"]): s.value
        for s in samples
        if s.name == "jitgrant_requests_total"
    }


def test_a_lifecycle_shows_in_the_scrape(env: Environment) -> None:
    assert env.operator.runtime is not None
    metrics = env.operator.runtime.metrics
    port = metrics.start_server(host="127.0.0.1", port=0)
    try:
        agent = env.client_for_service_account("agents", "oncall-agent")

        env.create_request(request("expires", duration="3s"), client=agent)
        active = wait_for_phase(env, "expires", "Active")
        samples = scrape(port)
        assert value(samples, "jitgrant_active_grants", cluster="in-cluster") == 1
        to_active = when(active["status"]["activatedAt"]) - when(active["metadata"]["creationTimestamp"])
        assert value(samples, "jitgrant_request_to_active_seconds_count", policy="oncall-restart") == 1
        observed = value(samples, "jitgrant_request_to_active_seconds_sum", policy="oncall-restart")
        # Status timestamps have whole seconds; the histogram has the real duration.
        assert abs(observed - to_active.total_seconds()) <= 1.0

        expired = wait_for_phase(env, "expires", "Expired", timeout=15)
        env.create_request(request("wrong-namespace", namespace="orders", duration="3s"), client=agent)
        wait_for_phase(env, "wrong-namespace", "Denied")
        env.create_request(request("needs-approval", policy="prod-restart", duration="5m"), client=agent)
        wait_for_phase(env, "needs-approval", "Pending")
        env.create_request(request("revoked", duration="10m"), client=agent)
        wait_for_phase(env, "revoked", "Active")
        assert value(scrape(port), "jitgrant_active_grants", cluster="in-cluster") == 1
        env.annotate_request("agents", "revoked", {"jitgrant.dev/revoke": "done early"}, client=env.admin)
        wait_for_phase(env, "revoked", "Revoked")

        samples = scrape(port)
        assert requests_by_outcome(samples) == {
            ("oncall-restart", "requested"): 3,
            ("oncall-restart", "approved"): 2,
            ("oncall-restart", "active"): 2,
            ("oncall-restart", "expired"): 1,
            ("oncall-restart", "denied"): 1,
            ("oncall-restart", "revoked"): 1,
            ("prod-restart", "requested"): 1,
            ("prod-restart", "pending"): 1,
        }
        assert value(samples, "jitgrant_active_grants", cluster="in-cluster") == 0
        # Only an expiry measures revocation lag: an early revocation was never late.
        assert value(samples, "jitgrant_revocation_lag_seconds_count", cluster="in-cluster") == 1
        lag = value(samples, "jitgrant_revocation_lag_seconds_sum", cluster="in-cluster")
        ended = when(expired["status"]["endedAt"]) - when(expired["status"]["expiresAt"])
        assert 0 <= lag < 5 and abs(lag - ended.total_seconds()) <= 1.0
        assert value(samples, "jitgrant_revocation_lag_seconds_bucket", cluster="in-cluster", le="5.0") == 1
        assert value(samples, "jitgrant_request_to_active_seconds_count", policy="oncall-restart") == 2
        # A request still waiting for its approvers has not been observed yet.
        assert not [
            s for s in samples if s.labels.get("policy") == "prod-restart" and "approval_wait" in s.name
        ]
        # Set by the 1 s sweep; a heartbeat checkpoint may be on its way to the sink at that moment.
        deadline = time.monotonic() + 10
        while value(scrape(port), "jitgrant_audit_spool_depth") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert value(scrape(port), "jitgrant_audit_spool_depth") == 0
        assert not [s for s in samples if s.name == "jitgrant_reconcile_errors_total"]

        # Live requests by phase: only the one waiting for approvals is still counted (the gauge
        # follows the watch, so the last event may arrive a moment after the status was read).
        def in_phase() -> dict[tuple[str, str], float]:
            return {
                (s.labels["policy"], s.labels["phase"]): s.value
                for s in scrape(port)
                if s.name == "jitgrant_requests_in_phase" and s.value
            }

        deadline = time.monotonic() + 10
        while in_phase() != {("prod-restart", "Pending"): 1} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert in_phase() == {("prod-restart", "Pending"): 1}
        # Every AccessRequest went through both webhooks; the revocation was an allowed UPDATE.
        webhooks = {
            (s.labels["webhook"], s.labels["operation"], s.labels["outcome"]): s.value
            for s in samples
            if s.name == "jitgrant_webhook_requests_total"
        }
        assert webhooks[("stamp-requester", "CREATE", "allowed")] == 4
        assert webhooks[("validate-request", "CREATE", "allowed")] == 4
        assert webhooks[("validate-request", "UPDATE", "allowed")] >= 1
        assert value(
            samples,
            "jitgrant_webhook_request_duration_seconds_count",
            webhook="stamp-requester",
            outcome="allowed",
        ) == sum(
            n
            for (hook, _, outcome), n in webhooks.items()
            if (hook, outcome) == ("stamp-requester", "allowed")
        )
        assert next(s.labels for s in samples if s.name == "jitgrant_build_info")["version"]
        assert value(samples, "process_resident_memory_bytes") > 0
        assert {s.labels["sink"]: s.value for s in samples if s.name == "jitgrant_audit_sink_up"} == {
            "file": 1.0
        }
        labels = {label for s in samples if s.name.startswith("jitgrant_") for label in s.labels}
        assert labels <= {
            "policy", "outcome", "cluster", "sink", "handler", "le", "phase", "webhook", "operation",
            "reason", "version", "revision", "python", "kind",
        }  # fmt: skip
    finally:
        metrics.stop_server()
