"""Two replicas: only the Lease holder acts; when it dies the other takes over within the goal, and
grants that expired meanwhile end then; a replica that loses the Lease is refused every write."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from jitgrant.handlers.leader import FencedCluster, NotLeader
from jitgrant.runner import OperatorThread
from jitgrant_testing.environment import Environment, free_port, wait_until

from .replicas import AUTO_POLICY, ServiceProxy, replica, request

FAILOVER_GOAL = 15.0  # seconds, issue 16


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


PORTS = {"replica-a": free_port(), "replica-b": free_port()}


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=30)) as environment:
        environment.operator.stop()  # replaced by replicas that elect a leader
        environment.allow_to_request("agents", service_account="oncall-agent")
        service_port = environment._webhook.port
        with ServiceProxy(service_port, list(PORTS.values())):
            yield environment


def _replica(env: Environment, identity: str, lease_seconds: float = 8.0) -> OperatorThread:
    return replica(env, identity, webhook_port=PORTS[identity], lease_seconds=lease_seconds)


def _serving(identity: str) -> None:
    """kopf says ready before its webhook server listens."""

    def listening() -> bool | None:
        try:
            with socket.create_connection(("127.0.0.1", PORTS[identity]), timeout=1):
                return True
        except OSError:
            return None

    wait_until(listening, timeout=20, what=f"{identity}'s webhook server")


def _leader(*replicas: OperatorThread) -> OperatorThread:
    def holder() -> OperatorThread | None:
        held = [r for r in replicas if r.election is not None and r.election.holds()]
        return held[0] if len(held) == 1 else None

    return wait_until(holder, timeout=20, what="exactly one leader")


def test_the_standby_takes_over_a_killed_leader_and_ends_what_expired_meanwhile(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    a = _replica(env, "replica-a")
    b = _replica(env, "replica-b")
    a.start()
    _serving("replica-a")
    assert _leader(a) is a
    env.apply([AUTO_POLICY])  # through the webhooks, which need a replica up
    b.start()
    try:
        time.sleep(1.0)
        assert b.election is not None and not b.election.holds(), "the standby must not hold the Lease"
        for index in range(5):
            env.create_request(request(f"failover-{index}", "6s"), client=agent)
        for index in range(5):
            env.wait_for_phase("agents", f"failover-{index}", "Active", timeout=20)
        # Killed, as a crash would: the Lease is not released, it lapses.
        assert a.election is not None
        a.election.release_on_stop = False
        killed = time.monotonic()
        a.stop()
        assert _leader(b) is b
        took_over = time.monotonic() - killed
        assert took_over < FAILOVER_GOAL, f"failover took {took_over:.1f}s"
        lags = []
        for index in range(5):
            ended = env.wait_for_phase("agents", f"failover-{index}", "Expired", timeout=FAILOVER_GOAL + 10)
            lag = (_t(ended["status"]["endedAt"]) - _t(ended["status"]["expiresAt"])).total_seconds()
            assert lag < FAILOVER_GOAL, f"failover-{index} ended {lag:.0f}s after its expiry"
            lags.append(lag)
        print(f"failover: standby acting {took_over:.1f}s after the kill; expiry lags {lags}")
        assert env.jit_bindings("payments") == []
    finally:
        b.stop()
        a.stop()


def test_a_clean_stop_hands_the_lease_over_at_once(env: Environment) -> None:
    a = _replica(env, "replica-a", lease_seconds=30.0)
    b = _replica(env, "replica-b", lease_seconds=30.0)
    a.start()
    _serving("replica-a")
    assert _leader(a) is a
    b.start()
    try:
        stopped = time.monotonic()
        a.stop()  # releases the Lease: a rollout does not wait for it to lapse
        assert _leader(b) is b
        assert time.monotonic() - stopped < 10.0  # far less than the 30 s Lease
    finally:
        b.stop()
        a.stop()


def test_a_replica_without_the_lease_is_refused_every_write(env: Environment) -> None:
    a = _replica(env, "replica-a")
    b = _replica(env, "replica-b")
    a.start()
    _serving("replica-a")
    assert _leader(a) is a
    b.start()
    try:
        runtime = b.runtime
        assert runtime is not None and isinstance(runtime.own, FencedCluster)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "fenced", "namespace": "payments"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "mallory"}],
        }
        with pytest.raises(NotLeader, match="replica-b does not hold the Lease"):
            asyncio.run(runtime.own.create_object(binding))
        with pytest.raises(NotLeader, match="does not hold the Lease"):
            asyncio.run(runtime.own.patch_request_status("agents", "x", {}, resource_version=None))
        assert env.role_bindings("payments") == [] or all(
            b["metadata"]["name"] != "fenced" for b in env.role_bindings("payments")
        )
    finally:
        b.stop()
        a.stop()
