"""The real operator against the embedded API server over HTTP, as the chart would install it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, wait_until

__all__ = ["jit_bindings", "phase_of", "request_manifest", "wait_for_phase", "wait_until"]


def phase_of(env: Environment, namespace: str, name: str) -> str | None:
    phase: str | None = (env.get_request(namespace, name).get("status") or {}).get("phase")
    return phase


def wait_for_phase(
    env: Environment, namespace: str, name: str, phase: str, *, timeout: float = 20.0
) -> dict[str, Any]:
    return env.wait_for_phase(namespace, name, phase, timeout=timeout)


def jit_bindings(env: Environment, namespace: str) -> list[dict[str, Any]]:
    return env.jit_bindings(namespace)


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        environment.apply(load_manifests(EXAMPLES / "prod-approval" / "policy.yaml"))
        environment.create_deployment("payments", "checkout")
        environment.create_deployment("payments", "ledger")
        environment.allow_to_request("agents", service_account="oncall-agent")
        yield environment


def request_manifest(
    name: str = "restart-checkout", *, policy: str = "oncall-restart", duration: str = "4s", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": policy,
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-1 stuck pods",
        },
    }
    body["spec"].update(spec)
    return body
