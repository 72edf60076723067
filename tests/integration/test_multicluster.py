"""One operator, two EKS target clusters (two embedded clusters authenticating EKS tokens, roles on
moto in server mode on 127.0.0.1): grants land only where their policy points, and a target whose
AWS endpoint hangs does not hold up grants in the other."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.eks import RegionEndpoints
from jitgrant_testing.aws import AWSStandIns, ClusterSpec, EKSStandIn, blackhole
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until

NS = "agents"
EU, US = "prod-eu", "prod-us"
CLUSTERS = (ClusterSpec(EU), ClusterSpec(US, region="us-east-1", role_name="jitgrant-target-us"))


@contextlib.contextmanager
def two_targets(**options: Any) -> Iterator[tuple[AWSStandIns, Environment]]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with (
        AWSStandIns(
            clusters=CLUSTERS,
            grantable_cluster_roles=grantable,
            namespaces=("payments", "orders", NS),
            **options,
        ) as aws,
        Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(hours=1)) as env,
    ):
        for cluster in (EU, US):
            env.apply(
                [
                    {
                        "apiVersion": "jitgrant.dev/v1alpha1",
                        "kind": "GrantPolicy",
                        "metadata": {"name": f"restart-{cluster}"},
                        "spec": {
                            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                            "target": aws.target(cluster),
                            "namespaces": ["payments"],
                            "grants": [{"clusterRole": "jit-restart-checkout"}],
                        },
                    }
                ]
            )
        env.allow_to_request(NS, service_account="oncall-agent")
        yield aws, env


def file_request(env: Environment, name: str, cluster: str, *, duration: str = "6s") -> None:
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(request_manifest(name, policy=f"restart-{cluster}", duration=duration), client=agent)


def agent_in(target: EKSStandIn) -> ApiClient:
    core = CoreV1Api(target.admin)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "oncall-agent"}})
    token = core.create_namespaced_service_account_token(
        "oncall-agent", NS, {"spec": {"expirationSeconds": 3600, "audiences": []}}
    ).status.token
    return target.cluster.api_client(token=token)


def can_restart(client: ApiClient) -> bool:
    try:
        AppsV1Api(client).patch_namespaced_deployment(
            "checkout",
            "payments",
            {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}},
        )
    except ApiException as exc:
        assert exc.status == 403
        return False
    return True


def sessions_seen(target: EKSStandIn) -> set[str]:
    return {username for username, _ in target.authenticated}


def test_grants_land_only_in_the_cluster_their_policy_targets() -> None:
    with two_targets() as (aws, env):
        eu, us = aws.standin(EU), aws.standin(US)
        agent_eu, agent_us = agent_in(eu), agent_in(us)

        file_request(env, "to-eu", EU)
        grant = wait_for_phase(env, NS, "to-eu", "Active")["status"]["grant"]
        assert grant["cluster"] == CLUSTERS[0].arn
        assert eu.managed("payments") == [f"RoleBinding/{grant['roleBinding']}"]
        assert us.managed("payments") == [] and jit_bindings(env, "payments") == []
        assert can_restart(agent_eu) and not can_restart(agent_us)

        # A longer window than to-eu's, so "to-us is still active when to-eu has expired" holds
        # however slowly a loaded machine gets through the checks in between.
        file_request(env, "to-us", US, duration="25s")
        grant_us = wait_for_phase(env, NS, "to-us", "Active")["status"]["grant"]
        assert grant_us["cluster"] == CLUSTERS[1].arn
        assert us.managed("payments") == [f"RoleBinding/{grant_us['roleBinding']}"]
        assert eu.managed("payments") == [f"RoleBinding/{grant['roleBinding']}"]
        assert can_restart(agent_us)

        # Each cluster saw only the session of the request meant for it (each token names its
        # cluster in a signed header, so it would not have been accepted by the other anyway).
        assert sessions_seen(eu) == {"jitgrant:jitgrant-agents-to-eu"}
        assert sessions_seen(us) == {"jitgrant:jitgrant-agents-to-us"}
        assert {c.role_arn for c in aws.assume_calls if c.session_name.endswith("to-us")} == {us.role_arn}

        wait_for_phase(env, NS, "to-eu", "Expired")
        assert eu.managed("payments") == [] and not can_restart(agent_eu)
        assert us.managed("payments") == [f"RoleBinding/{grant_us['roleBinding']}"]  # still its window
        wait_for_phase(env, NS, "to-us", "Expired", timeout=40.0)
        assert us.managed("payments") == [] and not can_restart(agent_us)
        agent_eu.close()
        agent_us.close()


def test_a_target_whose_sts_hangs_does_not_hold_up_grants_in_the_other() -> None:
    hang_seconds = 8.0
    sock, hanging_sts = blackhole()  # accepts connections, never answers
    try:
        with two_targets(
            region_endpoints={"us-east-1": RegionEndpoints(sts=hanging_sts)},
            connect_timeout=1.0,
            read_timeout=hang_seconds,
        ) as (aws, env):
            file_request(env, "to-us", US)
            [hanging] = wait_until(
                lambda: [c for c in aws.assume_calls if c.session_name == "jitgrant-agents-to-us"],
                what="prod-us's AssumeRole to be under way",
            )
            started = time.monotonic()
            file_request(env, "to-eu", EU, duration="1m")
            grant = wait_for_phase(env, NS, "to-eu", "Active")["status"]["grant"]
            took = time.monotonic() - started
            assert took < hang_seconds / 2, f"prod-eu waited {took:.1f}s behind the hanging prod-us"
            assert hanging.error is None and hanging.assumed_role_arn is None  # still hanging then
            assert aws.standin(EU).managed("payments") == [f"RoleBinding/{grant['roleBinding']}"]
            assert (env.get_request(NS, "to-us").get("status") or {}).get("phase") == "Approved"

            def unreachable() -> dict[str, Any] | None:
                status = env.get_request(NS, "to-us").get("status") or {}
                return status if status.get("reason") == "AWSUnreachable" else None

            status = wait_until(unreachable, timeout=hang_seconds + 10, what="prod-us's failure in status")
            assert hanging.error == "ReadTimeoutError"
            assert status["phase"] == "Approved"
            assert "could not reach AWS for EKS cluster prod-us in us-east-1" in status["message"]
            assert aws.standin(US).managed("payments") == []
            assert env.get_request(NS, "to-eu")["status"]["phase"] == "Active"

            # End it cleanly: unblock the hanging calls, then withdraw the request.
            sock.close()
            env.annotate_request(NS, "to-us", {"jitgrant.dev/revoke": "prod-us is down"}, client=env.admin)
            wait_for_phase(env, NS, "to-us", "Revoked", timeout=30)
            assert aws.standin(US).managed("payments") == []
    finally:
        sock.close()


def test_a_target_whose_api_server_never_answers_does_not_hold_up_the_other() -> None:
    """The operator's calls to a target API server time out: the request says so and is retried,
    the other cluster's grant goes ahead, and the operator can still stop."""
    sock, silent_api = blackhole()
    try:
        with two_targets(api_overrides={US: silent_api}, target_request_timeout=(1.0, 2.0)) as (aws, env):
            file_request(env, "to-us", US)
            file_request(env, "to-eu", EU, duration="1m")
            assert wait_for_phase(env, NS, "to-eu", "Active")["status"]["grant"]["cluster"] == CLUSTERS[0].arn

            def unreachable() -> dict[str, Any] | None:
                status = env.get_request(NS, "to-us").get("status") or {}
                return status if status.get("reason") == "ClusterUnreachable" else None

            status = wait_until(unreachable, timeout=15, what="prod-us's unanswered API server in status")
            assert status["phase"] == "Approved"
            assert f"could not reach the API server of cluster {CLUSTERS[1].arn}" in status["message"]
            assert aws.standin(US).managed("payments") == []

            env.annotate_request(NS, "to-us", {"jitgrant.dev/revoke": "prod-us is down"}, client=env.admin)
            wait_for_phase(env, NS, "to-us", "Revoked", timeout=30)
    finally:
        sock.close()
