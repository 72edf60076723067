"""The operator granting in an EKS cluster: the role assumed on moto (server mode, 127.0.0.1), the grant
in a second embedded cluster that authenticates EKS tokens like EKS does, and what the request's
status says when AssumeRole is refused or throttled.

moto cannot refuse or throttle AssumeRole (it has no trust policies and no rate limits) and ignores
SourceIdentity; those tests put botocore's Stubber on the operator's own STS client
(`EKSAccess.sts_client`) and check the parameters it was sent. The credentials a stubbed success
returns are real ones issued by moto, so DescribeCluster and the cluster's token check still run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from kubernetes.client import ApiClient, CoreV1Api

from jitgrant.clusters.eks import sts_name
from jitgrant.reactor.runtime import OPERATOR_SESSION
from jitgrant_testing.aws import ACCOUNT, OPERATORS_GROUP, REGION, AssumeRoleCall, AWSStandIns, EKSStandIn
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until

NS = "agents"
AGENT = "system:serviceaccount:agents:oncall-agent"
POLICY = "eks-restart"


@pytest.fixture
def aws() -> Iterator[AWSStandIns]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with AWSStandIns(grantable_cluster_roles=grantable, namespaces=("payments", "orders", NS)) as stand_ins:
        yield stand_ins


@pytest.fixture
def env(aws: AWSStandIns) -> Iterator[Environment]:
    # No periodic sweep during a test: it would call AssumeRole (as the operator's own session)
    # through a stubbed client at a moment the test does not control.
    with Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(hours=1)) as environment:
        environment.apply([eks_policy(aws)])
        environment.allow_to_request(NS, service_account="oncall-agent")
        yield environment


def eks_policy(aws: AWSStandIns, name: str = POLICY, cluster: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
            "target": aws.target(cluster),
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "jit-restart-checkout"}],
            "maxDuration": "15m",
        },
    }


def file_request(
    env: Environment, name: str, *, duration: str = "4s", policy: str = POLICY
) -> dict[str, Any]:
    agent = env.client_for_service_account(NS, "oncall-agent")
    return env.create_request(request_manifest(name, policy=policy, duration=duration), client=agent)


def agent_in_target(target: EKSStandIn) -> ApiClient:
    """The agent's own identity inside the target cluster (the one the RoleBinding names)."""
    core = CoreV1Api(target.admin)
    core.create_namespaced_service_account(NS, {"metadata": {"name": "oncall-agent"}})
    token = core.create_namespaced_service_account_token(
        "oncall-agent", NS, {"spec": {"expirationSeconds": 3600, "audiences": []}}
    ).status.token
    return target.cluster.api_client(token=token)


def restart(client: ApiClient, namespace: str, name: str) -> int:
    """Status code of `kubectl rollout restart`'s patch (200 or the refusal's)."""
    from kubernetes.client import AppsV1Api
    from kubernetes.client.exceptions import ApiException

    try:
        AppsV1Api(client).patch_namespaced_deployment(
            name,
            namespace,
            {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}},
        )
    except ApiException as exc:
        return int(exc.status)
    return 200


def calls_for(aws: AWSStandIns, session: str) -> list[AssumeRoleCall]:
    return [call for call in aws.assume_calls if call.session_name == sts_name(session)]


def expected_params(aws: AWSStandIns, session: str) -> dict[str, Any]:
    """What the operator must send: moto ignores SourceIdentity, so the stub checks it."""
    return {
        "RoleArn": aws.standin().role_arn,
        "RoleSessionName": sts_name(session),
        "SourceIdentity": sts_name(AGENT),
        "DurationSeconds": 900,
    }


def test_the_grant_lands_in_the_eks_cluster_as_the_request_session_and_goes_at_expiry(
    env: Environment, aws: AWSStandIns
) -> None:
    target = aws.standin()
    agent = agent_in_target(target)
    assert restart(agent, "payments", "checkout") == 403  # no standing access

    created = file_request(env, "restart-checkout", duration="5s")
    obj = wait_for_phase(env, NS, "restart-checkout", "Active")

    # The operator assumed the target role as a session named after the request, for the requester.
    session = "jitgrant-agents-restart-checkout"
    [call] = calls_for(aws, session)
    assert (call.role_arn, call.source_identity, call.duration_seconds) == (
        target.role_arn,
        "system-serviceaccount-agents-oncall-agent",
        900,
    )
    assert call.assumed_role_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/jitgrant-target/{session}"
    # ... and the cluster authenticated its EKS token as that session (access-entry username template).
    assert (f"jitgrant:{session}", (OPERATORS_GROUP,)) in target.authenticated

    grant = obj["status"]["grant"]
    assert (
        grant["cluster"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod-eu"
        and grant["target"]["type"] == "EKS"
    )
    [binding] = [b for b in target.role_bindings("payments") if b["metadata"]["name"] == grant["roleBinding"]]
    assert binding["roleRef"]["name"] == "jit-restart-checkout"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": NS}]
    assert binding["metadata"]["labels"]["jitgrant.dev/request-uid"] == created["metadata"]["uid"]
    assert jit_bindings(env, "payments") == []  # nothing in the operator's own cluster
    assert "serviceAccount" not in grant and "kubeconfigSecret" not in grant  # the agent has an identity

    assert restart(agent, "payments", "checkout") == 200
    assert restart(agent, "payments", "ledger") == 403
    assert restart(agent, "orders", "checkout") == 403

    ended = wait_for_phase(env, NS, "restart-checkout", "Expired")
    assert ended["status"]["endedAt"] >= ended["status"]["expiresAt"]
    assert target.managed("payments") == []
    assert restart(agent, "payments", "checkout") == 403
    # Removal ran as the operator's own session, never as the requester's.
    assert [c.source_identity for c in aws.assume_calls if c.session_name == OPERATOR_SESSION] == [
        OPERATOR_SESSION
    ]
    assert len(calls_for(aws, session)) == 1
    agent.close()


def test_access_denied_fails_the_request_naming_the_role_and_creates_nothing(
    env: Environment, aws: AWSStandIns
) -> None:
    session = "jitgrant-agents-denied"
    stubber = Stubber(aws.access.sts_client(REGION))  # moto has no trust policies to refuse with
    stubber.add_client_error(
        "assume_role",
        service_error_code="AccessDenied",
        service_message="User: arn:aws:sts::999988887777:assumed-role/jitgrant-operator/x is not "
        f"authorized to perform: sts:SetSourceIdentity on resource: {aws.standin().role_arn}",
        http_status_code=403,
        expected_params=expected_params(aws, session),
    )
    with stubber:
        file_request(env, "denied")
        status = wait_for_phase(env, NS, "denied", "Failed")["status"]
        stubber.assert_no_pending_responses()

    assert status["reason"] == "RoleAssumptionDenied"
    assert (
        f"may not assume role {aws.standin().role_arn} for EKS cluster prod-eu in {REGION}"
        in status["message"]
    )
    assert "sts:SetSourceIdentity" in status["message"]
    assert "grant" not in status and "activatedAt" not in status
    assert aws.standin().managed("payments") == []
    assert [c.error for c in calls_for(aws, session)] == ["AccessDenied"]  # permanent: not retried


def test_throttling_is_shown_in_status_and_retried_with_backoff_until_it_succeeds(
    env: Environment, aws: AWSStandIns
) -> None:
    session = "jitgrant-agents-throttled"
    # Real credentials from moto for the same session, so everything after AssumeRole is real.
    moto_sts = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=aws.moto.url,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x",
    )
    issued = moto_sts.assume_role(
        RoleArn=aws.standin().role_arn, RoleSessionName=session, DurationSeconds=900
    )
    issued.pop("ResponseMetadata")

    stubber = Stubber(aws.access.sts_client(REGION))  # moto never throttles
    for _ in range(2):
        stubber.add_client_error(
            "assume_role",
            service_error_code="Throttling",
            service_message="Rate exceeded",
            http_status_code=400,
            expected_params=expected_params(aws, session),
        )
    stubber.add_response("assume_role", issued, expected_params=expected_params(aws, session))
    with stubber:
        file_request(env, "throttled", duration="4s")

        def throttled() -> dict[str, Any] | None:
            status = env.get_request(NS, "throttled").get("status") or {}
            return status if status.get("reason") == "AWSThrottled" else None

        shown = wait_until(throttled, what="status to show the throttling")
        active = wait_for_phase(env, NS, "throttled", "Active")
        stubber.assert_no_pending_responses()

    assert shown["phase"] == "Approved"
    assert "AWS throttled AssumeRole for EKS cluster prod-eu" in shown["message"]
    assert "will retry" in shown["message"]
    assert active["status"]["reason"] == "Granted"

    calls = calls_for(aws, session)
    assert [c.error for c in calls] == ["Throttling", "Throttling", None]
    first_wait, second_wait = calls[1].at - calls[0].at, calls[2].at - calls[1].at
    # backoff_delay: between half and all of 2 s x 2^attempt, so >= 1 s and then >= 2 s.
    assert first_wait >= 1.0 and second_wait >= 2.0, (first_wait, second_wait)
    assert [b["metadata"]["name"] for b in aws.standin().role_bindings("payments")] == [
        active["status"]["grant"]["roleBinding"]
    ]

    # Expiry goes through moto again (the stubber is gone), as the operator's own session.
    wait_for_phase(env, NS, "throttled", "Expired")
    assert aws.standin().managed("payments") == []


def test_a_cluster_that_does_not_map_the_role_fails_the_request_as_unauthorized(
    env: Environment, aws: AWSStandIns
) -> None:
    """Like a role without an access entry: AssumeRole and the token are fine, the cluster says 401."""
    policy = eks_policy(aws, name="unmapped")
    policy["spec"]["target"]["eks"]["roleArn"] = f"arn:aws:iam::{ACCOUNT}:role/jitgrant-target-unmapped"
    env.apply([policy])
    file_request(env, "unmapped", policy="unmapped")
    status = wait_for_phase(env, NS, "unmapped", "Failed")["status"]
    assert status["reason"] == "ClusterUnauthorized"
    assert "cluster/prod-eu did not accept the operator's credentials (401)" in status["message"]
    assert "access entry" in status["message"]
    assert aws.standin().managed("payments") == []


def test_the_eks_demo_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    """`jitgrant demo --scenario eks`: every step checked against both clusters."""
    from jitgrant.cli.main import main

    assert main(["demo", "--scenario", "eks"]) == 0
    out = capsys.readouterr().out
    assert "=== scenario eks: every step checked against the cluster" in out
    assert "SourceIdentity oidc-https---127.0.0.1-" in out
    assert "kubeconfig written to" in out and "refused (401 Unauthorized)" in out
