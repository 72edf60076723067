"""Dark clusters cost the healthy ones nothing (issue 30 §3).

Five EKS stand-ins; three go dark while each holds grants falling due and more are filed for them:
either before TLS (the kernel accepts, nothing answers) or after it (TLS completes, then silence, the
mode only a read timeout cuts). The operator's calls to targets keep their production timeouts
(5 s connect, 20 s read) and its 8 reconcile slots: before isolation the dark clusters' passes held
every slot and thread-pool thread for those timeouts, and healthy clusters' expiries were 17-25 s
late (the issue). Here the healthy clusters' grants end and start on time while the dark hang: each
cluster has its own threads, slots and circuit breaker (clusters/gate.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitgrant.clusters.gate import DEFAULT_CALLS, CircuitState
from jitgrant.models.vocabulary import parse_time
from jitgrant_testing.aws import AWSStandIns, ClusterSpec, EKSStandIn
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests
from jitgrant_testing.hangproxy import Mode

from .conftest import request_manifest, wait_for_phase, wait_until

NS = "agents"
HEALTHY = [ClusterSpec("fleet-ok-0"), ClusterSpec("fleet-ok-1")]
DARK = [ClusterSpec("fleet-dark-0"), ClusterSpec("fleet-dark-1"), ClusterSpec("fleet-dark-2")]
# Bounds for the healthy clusters while the others hang, with room for two loaded shared cores:
# without isolation both were past 5 s (the read timeout, 20 s, in the stall mode).
EXPIRY_LAG_BOUND_S = 2.5
NEW_GRANT_BOUND_S = 6.0


@pytest.fixture
def fleet() -> Iterator[tuple[AWSStandIns, Environment]]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with (
        AWSStandIns(
            clusters=(*HEALTHY, *DARK),
            grantable_cluster_roles=grantable,
            namespaces=("payments", NS),
            deployments=(),
            hang_proxies=[spec.name for spec in (*HEALTHY, *DARK)],
        ) as aws,
        Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(seconds=5)) as env,
    ):
        env.apply(
            [
                {
                    "apiVersion": "jitgrant.dev/v1alpha1",
                    "kind": "GrantPolicy",
                    "metadata": {"name": spec.name},
                    "spec": {
                        "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                        "target": aws.target(spec.name),
                        "namespaces": ["payments"],
                        "grants": [{"clusterRole": "jit-restart-checkout"}],
                        "limits": {"oneOpenPerScope": False},
                    },
                }
                for spec in (*HEALTHY, *DARK)
            ]
        )
        env.allow_to_request(NS, service_account="oncall-agent")
        yield aws, env


def file(env: Environment, names: list[tuple[str, str]], duration: str) -> dict[str, float]:
    agent = env.client_for_service_account(NS, "oncall-agent")
    filed = {}
    for name, policy in names:
        filed[name] = time.time()
        env.create_request(request_manifest(name, policy=policy, duration=duration), client=agent)
    return filed


def time_to_active(env: Environment, filed: dict[str, float], *, timeout: float) -> dict[str, float]:
    """Seconds from each request's create to the first time it is seen Active (polled together)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(filed) and time.monotonic() < deadline:
        for name in filed.keys() - seen.keys():
            if (env.get_request(NS, name).get("status") or {}).get("phase") == "Active":
                seen[name] = time.time() - filed[name]
        time.sleep(0.1)
    assert len(seen) == len(filed), f"not Active within {timeout}s: {sorted(filed.keys() - seen.keys())}"
    return seen


def deleted_at(standin: EKSStandIn, binding: str) -> float | None:
    """When the cluster's audit log saw the operator's DELETE of the RoleBinding."""
    assert standin.audit_log is not None
    for line in standin.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event.get("verb") == "delete"
            and ref.get("resource") == "rolebindings"
            and ref.get("name") == binding
        ) and (event.get("responseStatus") or {}).get("code", 500) < 300:
            return parse_time(event["stageTimestamp"]).timestamp()
    return None


@pytest.mark.parametrize("mode", [Mode.DARK, Mode.STALL])
def test_healthy_clusters_grant_and_expire_on_time_while_three_hang(
    fleet: tuple[AWSStandIns, Environment], mode: Mode
) -> None:
    aws, env = fleet
    assert aws.hang is not None
    # Grants on every cluster; the dark clusters' fall due first, while they hang.
    due_dark = [(f"d-{spec.name}-{i}", spec.name) for spec in DARK for i in range(4)]
    due_healthy = [(f"h-{spec.name}-{i}", spec.name) for spec in HEALTHY for i in range(2)]
    filed = file(env, due_dark, duration="12s")
    filed.update(file(env, due_healthy, duration="24s"))
    time_to_active(env, filed, timeout=60)
    for spec in DARK:
        aws.hang.clusters[spec.name].mode = mode
    # More for the dark clusters: passes that hang in issuance.
    file(env, [(f"s-{spec.name}-{i}", spec.name) for spec in DARK for i in range(4)], duration="1m")
    due = max(parse_time(env.get_request(NS, name)["status"]["expiresAt"]) for name, _ in due_dark)
    # The dark clusters' first grants are due now: their removals hang.
    wait_until(lambda: datetime.now(UTC) > due + timedelta(seconds=1), timeout=30, what="their expiry")

    filed = file(env, [(f"n-{spec.name}-{i}", spec.name) for spec in HEALTHY for i in range(2)], "1m")
    took = time_to_active(env, filed, timeout=30)
    assert max(took.values()) < NEW_GRANT_BOUND_S, took

    lags = {}
    for name, policy in due_healthy:
        status = wait_for_phase(env, NS, name, "Expired", timeout=40)["status"]
        binding = status["grant"]["roleBinding"]
        gone = wait_until(
            lambda b=binding, p=policy: deleted_at(aws.standin(p), b), timeout=5, what="the DELETE"
        )
        lags[name] = gone - parse_time(status["expiresAt"]).timestamp()
    assert max(lags.values()) < EXPIRY_LAG_BOUND_S, lags

    # Meanwhile the dark clusters' calls were held within their own budget, then failed fast.
    runtime = env.operator.runtime
    assert runtime is not None and runtime.targets is not None
    states = {status.cluster: status for status in runtime.targets.status()}
    for spec in DARK:
        gate = states[spec.arn]
        assert gate.calls_in_flight <= DEFAULT_CALLS, gate
        if mode is Mode.DARK or gate.state is not CircuitState.CLOSED:
            # Two 5 s connect timeouts opened it (a stall: two 20 s read timeouts).
            assert gate.state in (CircuitState.OPEN, CircuitState.HALF_OPEN) and gate.refused > 0, gate
        else:
            # Stalled reads not yet timed out: they fill the cluster's own budget, nobody else's.
            assert gate.calls_in_flight == DEFAULT_CALLS, gate
    for spec in HEALTHY:
        assert states[spec.arn].state is CircuitState.CLOSED, states[spec.arn]

    # The dark clusters' grants are still there and overdue (never dropped from sight).
    def overdue() -> dict[str, Any] | None:
        status: dict[str, Any] = env.get_request(NS, due_dark[0][0])["status"]
        return status if status.get("reason") == "RemovalOverdue" else None

    # (a stalled removal says so once its read times out, 20 s after it was sent)
    assert wait_until(overdue, timeout=40, what="RemovalOverdue")["phase"] == "Active"
    metrics = runtime.metrics.render().decode()
    assert f'jitgrant_target_circuit_state{{cluster="{DARK[0].arn}"}}' in metrics
    assert f'jitgrant_target_circuit_state{{cluster="{HEALTHY[0].arn}"}}' not in metrics or (
        f'jitgrant_target_circuit_state{{cluster="{HEALTHY[0].arn}"}} 0.0' in metrics
    )
