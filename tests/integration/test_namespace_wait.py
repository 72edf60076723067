"""Issue 20 §7: a request that waited for its target namespace runs for all it asked, from when its
binding exists (it kept the window planned before the wait, and ran that much shorter)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from kubernetes.client import CoreV1Api

from jitgrant_testing.environment import Environment

from .conftest import request_manifest, wait_for_phase, wait_until


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_window_starts_when_the_binding_exists_not_when_the_wait_began(env: Environment) -> None:
    env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "late-namespace"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
                    "target": {"type": "InCluster"},
                    "namespaces": ["late"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "maxDuration": "15m",
                    "approval": {"required": False},
                },
            }
        ]
    )
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(
        request_manifest(policy="late-namespace", namespace="late", duration="10m"), client=agent
    )
    wait_until(
        lambda: (
            (env.get_request("agents", "restart-checkout").get("status") or {}).get("reason")
            == "WaitingForNamespace"
        ),
        what="the request waiting for its namespace",
    )
    time.sleep(4)
    created = datetime.now(UTC).replace(microsecond=0)
    CoreV1Api(env.admin).create_namespace({"metadata": {"name": "late"}})
    status = wait_for_phase(env, "agents", "restart-checkout", "Active", timeout=30)["status"]
    planned = _parse(status["grant"]["plannedAt"])
    activated, expires = _parse(status["activatedAt"]), _parse(status["expiresAt"])
    assert activated >= created > planned + timedelta(seconds=3), (planned, created, activated)
    assert expires - activated == timedelta(minutes=10)
