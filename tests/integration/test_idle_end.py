"""Idle end (issue 31 §3) with the operator's activity source reading the embedded API server's own
audit log: an agent that keeps acting keeps its grant past the idleTimeout, one that stops loses it
(reason Idle) within the timeout and a few seconds; a policy with idleTimeout and no activity source
is refused at apply."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import AppsV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

NS = "agents"
IDLE = 4.0  # seconds


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _policy(name: str) -> dict[str, Any]:
    [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    policy = copy.deepcopy(policy)
    policy["metadata"]["name"] = name
    policy["spec"]["idleTimeout"] = f"{int(IDLE)}s"
    return policy


def _request(name: str, policy: str) -> dict[str, Any]:
    [manifest] = load_manifests(EXAMPLES / "requests" / "restart-checkout.yaml")
    manifest["metadata"]["name"] = name
    manifest["spec"]["policy"] = policy
    manifest["spec"]["duration"] = "10m"
    return manifest


@pytest.fixture
def watched_env(tmp_path: Path) -> Iterator[Environment]:
    """The operator's activity source is the embedded server's audit log (as `self`, the name
    docs/audit.md gives the operator's own cluster)."""
    state = tmp_path / "state"
    state.mkdir()
    config = {
        "spoolDir": str(tmp_path / "spool"),
        "sinks": [
            {"type": "webhook", "url": f"http://127.0.0.1:{_closed_port()}/audit", "timeoutSeconds": 0.5}
        ],
        "activity": {"sources": {"self": {"type": "file", "path": str(state / "kube-apiserver-audit.log")}}},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    with Environment(audit_config=path, state_dir=state) as env:
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        env.create_deployment("payments", "checkout")
        env.allow_to_request(NS, service_account="oncall-agent")
        yield env


def test_an_agent_that_acts_keeps_its_grant_and_one_that_stops_loses_it(watched_env: Environment) -> None:
    env = watched_env
    env.apply([_policy("idle-restart")])
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(_request("idle-agent", "idle-restart"), client=agent)
    env.wait_for_phase(NS, "idle-agent", "Active")
    apps = AppsV1Api(agent)
    acting_until = time.monotonic() + 2.5 * IDLE
    while time.monotonic() < acting_until:  # well past one timeout, acting every second
        apps.read_namespaced_deployment("checkout", "payments")
        time.sleep(1.0)
    still = env.get_request(NS, "idle-agent")
    assert still["status"]["phase"] == "Active", still["status"]
    stopped = time.monotonic()
    ended = env.wait_for_phase(NS, "idle-agent", "Revoked", timeout=IDLE + 10)
    took = time.monotonic() - stopped
    assert ended["status"]["reason"] == "Idle", ended["status"]
    assert (
        "idleTimeout is 4s" in ended["status"]["message"]
        and "last API call was at" in ended["status"]["message"]
    )
    assert took <= IDLE + 10
    with pytest.raises(ApiException) as refused:
        apps.read_namespaced_deployment("checkout", "payments")
    assert refused.value.status == 403


def test_a_policy_with_idle_timeout_and_no_activity_source_is_refused_at_apply() -> None:
    with Environment() as env:
        with pytest.raises(ApiException) as refused:
            env.apply([_policy("idle-nowhere")])
        assert refused.value.status == 422
        body = str(refused.value.body)
        assert "spec.idleTimeout 4s needs the target cluster's API calls" in body
        assert "no activity source for cluster in-cluster" in body


def test_an_idle_timer_runs_across_an_operator_restart(watched_env: Environment) -> None:
    """The deadline comes from the audit log, not from the stopped process: a grant left idle while the
    operator was down ends when it starts again, not at the end of its 10-minute window."""
    env = watched_env
    env.apply([_policy("idle-restart")])
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(_request("idle-across", "idle-restart"), client=agent)
    env.wait_for_phase(NS, "idle-across", "Active")
    AppsV1Api(agent).read_namespaced_deployment("checkout", "payments")
    env.operator.stop()
    time.sleep(IDLE + 2)  # the timeout passes while nothing watches
    still = env.get_request(NS, "idle-across")
    assert still["status"]["phase"] == "Active", "nothing else ends the grant while the operator is down"
    started = time.monotonic()
    env.start_operator()
    ended = env.wait_for_phase(NS, "idle-across", "Revoked", timeout=15)
    assert ended["status"]["reason"] == "Idle", ended["status"]
    assert time.monotonic() - started < 15
