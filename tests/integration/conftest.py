"""The real operator against the embedded API server over HTTP, as the chart would install it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from jitgrant.demo.environment import EXAMPLES, Environment, load_manifests

T = TypeVar("T")


def wait_until(fn: Callable[[], T | None], *, timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def phase_of(env: Environment, namespace: str, name: str) -> str | None:
    phase: str | None = (env.get_request(namespace, name).get("status") or {}).get("phase")
    return phase


def wait_for_phase(
    env: Environment, namespace: str, name: str, phase: str, *, timeout: float = 20.0
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        obj = env.get_request(namespace, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    try:
        return wait_until(reached, timeout=timeout, what=f"{namespace}/{name} to become {phase}")
    except AssertionError:
        status = env.get_request(namespace, name).get("status")
        raise AssertionError(f"{namespace}/{name} did not become {phase}; status is {status}") from None


def jit_bindings(env: Environment, namespace: str) -> list[dict[str, Any]]:
    return [
        b
        for b in env.role_bindings(namespace)
        if (b["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "jitgrant"
    ]


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
