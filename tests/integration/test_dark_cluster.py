"""A target cluster that goes dark: an EKS stand-in whose API server the operator reaches through a
proxy that accepts connections and never answers (as `make chaos`'s hanging target), then comes back.

- A window that closes while the cluster is dark ends Failed (TargetUnreachable): no RoleBinding is
  ever created at or after expiresAt. (Before, the binding was created when the cluster came back,
  long after the window, and deleted moments later.)
- An expiry the dark cluster cannot carry out is visible while it is overdue: the RemovalOverdue
  condition (the cluster, since expiresAt, the next attempt), one Event, one audit record and the
  gauge the alert reads; the log says once that the cluster went dark, with no traceback per retry.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from jitgrant.models.vocabulary import parse_time
from jitgrant_testing.aws import AWSStandIns, ClusterSpec, EKSStandIn
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import request_manifest, wait_for_phase, wait_until

NS = "agents"
DARK = ClusterSpec("prod-dark")


@pytest.fixture
def dark() -> Iterator[tuple[AWSStandIns, Environment]]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with (
        AWSStandIns(
            clusters=(DARK,),
            grantable_cluster_roles=grantable,
            namespaces=("payments", "orders", NS),
            dark_proxies=(DARK.name,),
            target_request_timeout=(1.0, 2.0),
        ) as aws,
        # No sweep during the test: what ends the grant is the request's own lifecycle.
        Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(hours=1)) as env,
    ):
        env.apply(
            [
                {
                    "apiVersion": "jitgrant.dev/v1alpha1",
                    "kind": "GrantPolicy",
                    "metadata": {"name": "restart-dark"},
                    "spec": {
                        "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                        "target": aws.target(DARK.name),
                        "namespaces": ["payments"],
                        "grants": [{"clusterRole": "jit-restart-checkout"}],
                    },
                }
            ]
        )
        env.allow_to_request(NS, service_account="oncall-agent")
        yield aws, env


def file_request(env: Environment, name: str, duration: str) -> None:
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(request_manifest(name, policy="restart-dark", duration=duration), client=agent)


def binding_creates(standin: EKSStandIn) -> list[dict[str, Any]]:
    """Every RoleBinding create the cluster's audit log saw from the operator (allowed or not)."""
    assert standin.audit_log is not None
    events = [json.loads(line) for line in standin.audit_log.read_text().splitlines() if line.strip()]
    return [
        event
        for event in events
        if event.get("verb") == "create"
        and (event.get("objectRef") or {}).get("resource") == "rolebindings"
        and str((event.get("user") or {}).get("username", "")).startswith("jitgrant:")
    ]


def test_a_window_that_closes_while_the_cluster_is_dark_grants_nothing_ever(
    dark: tuple[AWSStandIns, Environment],
) -> None:
    aws, env = dark
    standin = aws.standin(DARK.name)
    aws.proxies[DARK.name].dark = True
    file_request(env, "late", duration="5s")

    def unreachable() -> dict[str, Any] | None:
        status = env.get_request(NS, "late").get("status") or {}
        return status if status.get("reason") == "ClusterUnreachable" else None

    waiting = wait_until(unreachable, timeout=30, what="the dark cluster in status")
    assert waiting["phase"] == "Approved"
    # The plan was recorded (AWS answered), so its window is fixed: it ends at the plan's expiresAt.
    expires_at = parse_time(waiting["grant"]["expiresAt"])
    wait_until(
        lambda: datetime.now(UTC) > expires_at + timedelta(seconds=2) or None,
        timeout=30,
        what="the window to pass while the cluster is dark",
    )
    # The cluster comes back after the window: nothing may be created there for the request.
    aws.proxies[DARK.name].dark = False

    failed = wait_for_phase(env, NS, "late", "Failed", timeout=60)["status"]
    assert failed["reason"] == "TargetUnreachable", failed
    assert "nothing was granted" in failed["message"] and DARK.arn in failed["message"]
    assert "activatedAt" not in failed
    assert parse_time(failed["endedAt"]) >= expires_at
    assert "next attempt at" in waiting["message"]  # where it stood while the cluster was dark

    file_request(env, "after", duration="30s")
    wait_for_phase(env, NS, "after", "Active", timeout=60)  # the cluster answers again
    time.sleep(2)  # room for a late attempt for "late", which must not come
    assert env.get_request(NS, "late")["status"]["phase"] == "Failed"
    created = [e["objectRef"].get("name", "") for e in binding_creates(standin)]
    assert not [name for name in created if "late" in name], created
    trail = env.audit_file.read_text()
    assert '"requestName":"late"' in trail
    late = [json.loads(line)["event"] for line in trail.splitlines() if '"requestName":"late"' in line]
    assert "granted" not in [event["type"] for event in late]


def overdue_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition["type"] == "RemovalOverdue" and condition["status"] == "True":
            found: dict[str, Any] = condition
            return found
    return None


def test_an_expiry_the_dark_cluster_cannot_carry_out_is_overdue_visible_and_alerted(
    dark: tuple[AWSStandIns, Environment], caplog: pytest.LogCaptureFixture
) -> None:
    aws, env = dark
    standin = aws.standin(DARK.name)
    caplog.set_level(logging.DEBUG, logger="jitgrant")
    file_request(env, "stuck", duration="6s")
    active = wait_for_phase(env, NS, "stuck", "Active", timeout=30)["status"]
    binding = active["grant"]["roleBinding"]
    aws.proxies[DARK.name].dark = True
    went_dark = len(caplog.records)

    def overdue() -> dict[str, Any] | None:
        status = env.get_request(NS, "stuck").get("status") or {}
        return status if overdue_condition(status) else None

    status = wait_until(overdue, timeout=40, what="the RemovalOverdue condition")
    condition = overdue_condition(status)
    assert condition is not None
    # Still Active (the binding may well exist: it does), overdue since its expiresAt, in that cluster.
    assert status["phase"] == "Active" and status["reason"] == "RemovalOverdue"
    assert condition["lastTransitionTime"] == active["expiresAt"]
    assert DARK.arn in condition["message"] and f"overdue since {active['expiresAt']}" in condition["message"]
    assert "next attempt at" in condition["message"]
    assert standin.managed("payments") == [f"RoleBinding/{binding}"]
    metrics = env.operator.runtime.metrics.render().decode()  # type: ignore[union-attr]
    assert f'jitgrant_removal_overdue_grants{{cluster="{DARK.arn}"}} 1.0' in metrics
    assert f'jitgrant_target_reachable{{cluster="{DARK.arn}"}} 0.0' in metrics

    # Retried (the next attempt moves on, capped) without another Event or record for it.
    first_next = condition["message"].rpartition("next attempt at ")[2]

    def retried() -> bool | None:
        current = overdue_condition(env.get_request(NS, "stuck").get("status") or {})
        return (current is not None and not current["message"].endswith(first_next)) or None

    wait_until(retried, timeout=40, what="a second attempt at the removal")
    events = [
        event
        for event in CoreV1Api(env.admin).list_namespaced_event(NS).items
        if event.involved_object.name == "stuck" and event.reason == "RemovalOverdue"
    ]
    assert len(events) == 1 and events[0].type == "Warning" and DARK.arn in events[0].message

    def overdue_records() -> list[dict[str, Any]] | None:
        lines = env.audit_file.read_text().splitlines()
        found = [json.loads(line)["event"] for line in lines if '"type":"removal-overdue"' in line]
        return found or None

    [record] = wait_until(overdue_records, timeout=10, what="the removal-overdue audit record")
    assert record["requestName"] == "stuck" and record["cluster"] == DARK.arn

    # One line when the cluster went dark; no traceback for any retry.
    dark_logs = caplog.records[went_dark:]
    assert len([r for r in dark_logs if "is unreachable" in r.getMessage()]) == 1
    assert not [r for r in dark_logs if r.exc_info and r.name.startswith("jitgrant")]

    came_back = datetime.now(UTC)
    aws.proxies[DARK.name].dark = False
    ended = wait_for_phase(env, NS, "stuck", "Expired", timeout=60)["status"]
    assert overdue_condition(ended) is None
    assert standin.managed("payments") == []
    # Retried soon after the cluster answered: the backoff is capped (30 s), never minutes.
    assert parse_time(ended["endedAt"]) - came_back < timedelta(seconds=35)
    metrics = env.operator.runtime.metrics.render().decode()  # type: ignore[union-attr]
    assert f'jitgrant_removal_overdue_grants{{cluster="{DARK.arn}"}} 0.0' in metrics
    assert [r.getMessage() for r in caplog.records if "is reachable again" in r.getMessage()]
