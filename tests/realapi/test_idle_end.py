"""Idle end (issue 31 §3) on the real kube-apiserver: the operator reads the grant's calls from the
API server's own audit log (`--audit-log-path`, blocking mode, as the file activity source reads it).
An agent that acts every 20 s under idleTimeout: 1m keeps its grant; once it stops, it loses it within
the timeout plus 15 s (reason Idle), and the real authorizer stops letting it in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import AppsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.audit.activity import ActivityReader
from jitgrant.audit.config import ActivityConfig
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant_testing.environment import wait_until
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, request, unique

IDLE_SECONDS = 60


@pytest.fixture
def activity_source(real_env: RealEnvironment) -> Iterator[None]:
    """The session's operator given the API server's audit log as its activity source (the chart's
    audit.activity.sources `self`), as a restart with that configuration would; restored after."""
    runtime = real_env.operator.runtime
    assert runtime is not None
    trail = getattr(runtime.audit, "inner", runtime.audit)
    config = ActivityConfig.model_validate(
        {"sources": {"self": {"type": "file", "path": str(real_env.control_plane.audit_log_path)}}}
    )
    before = trail._activity
    trail._activity = ActivityReader(config)
    try:
        yield
    finally:
        trail._activity = before


def _policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": {"type": "InCluster"},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
            "idleTimeout": "1m",
            "approval": {"required": False},
        },
    }


def _status(call: Any) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


@pytest.mark.timeout(300)  # 100 s of acting, then up to 75 s for the idle end
def test_an_agent_acting_every_20s_keeps_its_grant_and_loses_it_idle(
    real_env: RealEnvironment, activity_source: None
) -> None:
    policy = unique("idle")
    real_env.apply([_policy(policy)])
    try:
        agent = real_env.client_for_service_account(NS, "oncall-agent")
        name = unique("idle")
        real_env.create_request(request(name, policy=policy, duration="10m"), client=agent)
        real_env.wait_for_phase(NS, name, "Active", timeout=30)
        read = lambda: AppsV1Api(agent).read_namespaced_deployment("checkout", "payments")  # noqa: E731
        wait_until(lambda: _status(read) == 200, timeout=20, what="the grant works")
        acting_until = time.monotonic() + 100  # well past one idleTimeout
        while time.monotonic() < acting_until:
            assert _status(read) == 200, "the grant ended while the agent was acting"
            time.sleep(20)
        assert _status(read) == 200
        stopped = time.monotonic()
        ended = real_env.wait_for_phase(NS, name, "Revoked", timeout=IDLE_SECONDS + 15)
        assert time.monotonic() - stopped <= IDLE_SECONDS + 15
        assert ended["status"]["reason"] == "Idle", ended["status"]
        assert "idleTimeout is 1m" in ended["status"]["message"]
        wait_until(lambda: _status(read) == 403, timeout=20, what="access ends with the grant")
    finally:
        CustomObjectsApi(real_env.admin).delete_cluster_custom_object(
            API_GROUP, API_VERSION, "grantpolicies", policy
        )
