"""Two replicas: only the Lease holder acts; when it dies the other takes over within the goal, and
grants that expired meanwhile end then; a replica that loses the Lease is refused every write."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.errors import NotLeader
from jitgrant.clusters.leader import LEASE_NAME
from jitgrant.models.vocabulary import REVOKE_ANNOTATION
from jitgrant.operator.runner import OperatorThread
from jitgrant.reactor.fencing import FencedCluster
from jitgrant_testing.environment import (
    OPERATOR_NAMESPACE,
    OPERATOR_USERNAME,
    Environment,
    free_port,
    wait_until,
)

from .replicas import AUTO_POLICY, CLUSTER_ROLE, ServiceProxy, operator_twin, replica, request

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


def _replica(
    env: Environment, identity: str, lease_seconds: float = 8.0, service_account: str | None = None
) -> OperatorThread:
    return replica(
        env,
        identity,
        webhook_port=PORTS[identity],
        lease_seconds=lease_seconds,
        service_account=service_account,
    )


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
    env.apply([*CLUSTER_ROLE, AUTO_POLICY])  # through the webhooks, which need a replica up
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


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _writes_by(env: Environment, username: str) -> list[str]:
    """Every write the API server's audit log attributes to `username`, as `verb resource/name`."""
    log = env.state_dir / "kube-apiserver-audit.log"
    found = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["user"].get("username") == username and event["verb"] in WRITE_VERBS:
            ref = event.get("objectRef") or {}
            resource = "/".join(filter(None, (ref.get("resource"), ref.get("subresource"))))
            found.append(f"{event['verb']} {resource} {ref.get('namespace', '')}/{ref.get('name', '')}")
    return found


def test_a_standby_writes_nothing_through_a_requests_whole_life(env: Environment) -> None:
    """Filed, granted, revoked, deleted: the standby serves webhooks and watches, and the API server
    saw it write nothing but its own attempts at the Lease (kopf used to add its finalizer, its
    progress and diff-base annotations from every replica)."""
    # The standby calls the API server as a twin of the operator's account: the audit log tells
    # its requests apart (refused ones too: an attempt counts as a write).
    standby_user = operator_twin(env, "jitgrant-standby")
    agent = env.client_for_service_account("agents", "oncall-agent")
    a = _replica(env, "replica-a")
    b = _replica(env, "replica-b", service_account="jitgrant-standby")
    a.start()
    _serving("replica-a")
    assert _leader(a) is a
    env.apply([*CLUSTER_ROLE, AUTO_POLICY])
    b.start()
    _serving("replica-b")
    try:
        time.sleep(1.0)  # the standby has listed and watches every request from here on
        for index in range(3):
            env.create_request(request(f"quiet-{index}", "10m"), client=agent)
        for index in range(3):
            env.wait_for_phase("agents", f"quiet-{index}", "Active", timeout=20)
        env.annotate_request("agents", "quiet-0", {REVOKE_ANNOTATION: "INC-1 done"}, client=env.admin)
        env.wait_for_phase("agents", "quiet-0", "Revoked", timeout=20)
        CustomObjectsApi(env.admin).delete_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", "agents", "accessrequests", "quiet-1"
        )

        def gone() -> bool | None:
            try:
                env.get_request("agents", "quiet-1")
            except ApiException as exc:
                return exc.status == 404 or None
            return None

        wait_until(gone, timeout=20, what="the deleted request gone")
        assert not any(b["metadata"]["name"].startswith("jit-quiet-1") for b in env.jit_bindings("payments"))
        time.sleep(2.0)  # anything the standby would still do in reaction
        assert b.election is not None and not b.election.holds()
        leader_writes = _writes_by(env, OPERATOR_USERNAME)
        assert any("accessrequests" in w for w in leader_writes), leader_writes  # the log sees writes
        election_lease = f"leases {OPERATOR_NAMESPACE}/{LEASE_NAME}"
        standby_writes = [w for w in _writes_by(env, standby_user) if not w.endswith(election_lease)]
        assert standby_writes == [], f"the standby wrote: {standby_writes}"
    finally:
        b.stop()
        a.stop()
