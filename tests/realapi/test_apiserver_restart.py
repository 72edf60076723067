"""The real kube-apiserver killed for a minute under an elected, in-process operator (issue 23).

make e2e's helm-upgrade step, right after its apiserver-down step, read grants made Active after the
outage as 35-45 s late (its measurement started after a slow rollout: docs/real-cluster.md). This is
the operator's side of that claim, checked directly: the same outage (SIGKILL, 60 s: longer than
kopf's 54 s of retries of a watch) hits one replica holding the Lease; after the API server is back,
the grant that ended during the outage ends, and a grant made afterwards ends at its own expiry,
from the same process, without a restart.

Its own control plane: the session's one must not go dark under the other tests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.leader import LeaderElection
from jitgrant.models.vocabulary import parse_time
from jitgrant.operator.runner import OperatorThread, leader_election
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES, load_manifests, wait_until
from jitgrant_testing.realenv import RealEnvironment

from .conftest import _build

NS = "agents"
OUTAGE = 60.0
SLACK = 5.0  # as make e2e's EXPIRY_SLACK


def request(name: str, duration: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "policy": "oncall-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": duration,
            "justification": "INC-23 outage",
        },
    }


@pytest.fixture
def outage_env() -> Iterator[RealEnvironment]:
    if "error" in _build:
        pytest.fail(f"could not build the control plane: {_build['error']}")
    bin_dir = _build.get("bin_dir")
    plane = ControlPlane(Path(str(bin_dir)) if bin_dir else None)
    plane.start()
    try:
        env = RealEnvironment(plane=plane, sweep_interval=timedelta(seconds=30))
        with env:
            env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
            env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
            env.allow_to_request(NS, service_account="oncall-agent")
            # One replica of several: the same operator, now electing itself over the Lease.
            env.operator.stop()

            def election(built: Runtime) -> LeaderElection:
                return leader_election(built.settings, kubeconfig=env._operator_kubeconfig())

            env.operator = OperatorThread(env._runtime_factory, election_factory=election)
            env.start_operator()
            yield env
    finally:
        plane.stop()


def _binding_gone_at(env: RealEnvironment, name: str, timeout: float) -> datetime:
    binding = (env.get_request(NS, name).get("status") or {}).get("grant", {}).get("roleBinding")
    assert binding, f"{name} recorded no RoleBinding"
    wait_until(
        lambda: binding not in {b["metadata"]["name"] for b in env.role_bindings("payments")},
        timeout=timeout,
        what=f"{name}'s RoleBinding to be gone",
    )
    return datetime.now(UTC)


def _expires(env: RealEnvironment, name: str) -> datetime:
    return parse_time(env.get_request(NS, name)["status"]["expiresAt"])


def test_grants_made_after_an_apiserver_outage_end_on_time(outage_env: RealEnvironment) -> None:
    env = outage_env
    agent = env.client_for_service_account(NS, "oncall-agent")
    election = env.operator.election
    assert election is not None
    wait_until(election.holds, timeout=30, what="the replica to hold the Lease")

    during = f"during-{secrets.token_hex(3)}"
    env.create_request(request(during, "20s"), client=agent)
    env.wait_for_phase(NS, during, "Active", timeout=30)

    apiserver = next(p for p in env.control_plane._processes if p.name == "kube-apiserver")
    assert apiserver.popen is not None
    apiserver.popen.kill()  # as a crash would: no graceful close of its connections
    apiserver.popen.wait()
    apiserver.popen = None
    time.sleep(OUTAGE)
    apiserver.start(env.control_plane.dir)

    def answers() -> bool:
        try:
            return CoreV1Api(env.admin).list_namespace(limit=1) is not None
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return False  # still starting

    wait_until(answers, timeout=120, what="the API server")
    returned = datetime.now(UTC)

    # Overdue: ended by the take-over once the API server answers again. Taking over lists the
    # custom resources, which a restarted API server refuses (429) until its watch cache for them has
    # reloaded: seconds, more on a loaded machine, so this bound is looser than the one that follows.
    gone = _binding_gone_at(env, during, timeout=60)
    overdue = (gone - max(returned, _expires(env, during))).total_seconds()
    assert overdue <= 3 * SLACK, f"the overdue grant ended {overdue:.1f}s after the return"

    after = f"after-{secrets.token_hex(3)}"
    env.create_request(request(after, "15s"), client=agent)
    env.wait_for_phase(NS, after, "Active", timeout=60)
    expires = _expires(env, after)
    gone = _binding_gone_at(env, after, timeout=60)
    late = (gone - expires).total_seconds()
    assert late <= SLACK, f"a grant made after the outage ended {late:.1f}s late"
    assert env.operator.election is election and election.holds()  # the same replica, no restart
