"""The whole EKS path end to end: assume the role on moto, mint a token, and act on a cluster that
authenticates it as EKS does (the embedded cluster over HTTPS with the EKS token authenticator).

moto's DescribeCluster endpoint is not reachable and its CA is not a PEM, so the endpoint override
points the EKS target at the embedded cluster's HTTPS address and real CA; DescribeCluster itself
still runs against moto.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import kubernetes
import pytest

from embedkube import EmbeddedCluster, User
from jitgrant.clusters.connection import BearerToken, ClusterConnection, StaticToken
from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.clusters.registry import TargetClusters
from jitgrant.models import EKSTarget, Target, TargetType
from jitgrant_testing.eks_authenticator import verify_eks_token
from jitgrant_testing.presigned_sts import PresignedSTS

from ._aws import OPERATOR_SECRET, TARGET_ROLE, create_eks_cluster

OPERATORS = "jitgrant:operators"
MAPPING = {TARGET_ROLE: ("jitgrant:{{SessionName}}", [OPERATORS])}


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(name="prod-eu") as embedded:
        embedded.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "jitgrant-operators"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": OPERATORS}],
            }
        )
        yield embedded


@pytest.fixture
async def eks_cluster(cluster: EmbeddedCluster, moto_url: str) -> AsyncIterator[EmbeddedCluster]:
    """The embedded cluster accepting EKS tokens, with STS's presigned-URL check on the same loop."""
    sts = PresignedSTS(moto_url=moto_url)
    cluster.run(sts.start())

    async def authenticate(token: str) -> User | None:
        found = await verify_eks_token(
            token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING
        )
        return None if found is None else User(name=found[0], groups=found[1])

    cluster.add_authenticator(authenticate)
    yield cluster
    cluster.run(sts.stop())


def act_on(connection: ClusterConnection) -> tuple[str, list[str], dict[str, Any]]:
    """What a handler does in a worker thread: who am I, then create a RoleBinding."""
    with connection.to_api_client() as api:
        review = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review(
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        binding = kubernetes.client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            "default",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "jit-restart"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "oncall-bot", "namespace": "agents"}],
            },
        )
        info = review.status.user_info
        return info.username, list(info.groups or []), api.sanitize_for_serialization(binding)


async def test_the_operator_reaches_an_eks_cluster_as_the_request_session(
    eks_cluster: EmbeddedCluster, moto_url: str, base_session: boto3.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="jitgrant")
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={"prod-eu": (eks_cluster.https_url, eks_cluster.ca_pem)},
    )
    own = ClusterConnection(
        name="in-cluster", server=eks_cluster.url, token_provider=StaticToken(BearerToken("x"))
    )
    targets = TargetClusters(own=own, eks=access)
    target = EKSTarget(cluster_name="prod-eu", region="eu-west-1", role_arn=TARGET_ROLE)

    connection = await targets.connection(
        Target(type=TargetType.EKS, eks=target),
        session_name="payments/restart-42",
        source_identity="system:serviceaccount:agents:oncall-bot",
    )
    assert connection.server.startswith("https://") and connection.ca_pem == eks_cluster.ca_pem
    username, groups, binding = await asyncio.to_thread(act_on, connection)

    assert username == "jitgrant:payments-restart-42"
    assert OPERATORS in groups
    assert binding["metadata"]["name"] == "jit-restart"

    # Nothing secret reached the logs: not the operator's key, not the assumed session's secret or
    # token, not the EKS token or its signature. (Root captured at INFO, jitgrant at DEBUG; botocore
    # at DEBUG logs signed requests and response bodies itself - see docs/eks.md.)
    session = access.assume(
        target, session_name="payments/restart-42", source_identity="system:serviceaccount:agents:oncall-bot"
    )
    token = connection.token()
    assert token is not None
    payload = token.value.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    secrets = {
        "operator secret key": OPERATOR_SECRET,
        "session secret key": session.secret_access_key,
        "session token": session.session_token,
        "EKS token": token.value,
        "EKS token payload": payload[:40],
        "presigned signature": signature,
    }
    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    assert "assumed" in logged, "the flow did log, so the absence below means something"
    leaked = [name for name, secret in secrets.items() if secret in logged]
    assert leaked == []
    assert all(secret not in repr(connection) for secret in secrets.values())


async def test_a_role_without_a_mapping_is_unauthorized(
    eks_cluster: EmbeddedCluster, moto_url: str, base_session: boto3.Session
) -> None:
    """Like a role with no access entry in EKS: the token is valid, the cluster does not know the role."""
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={"prod-eu": (eks_cluster.https_url, eks_cluster.ca_pem)},
    )
    stranger = EKSTarget(
        cluster_name="prod-eu", region="eu-west-1", role_arn=TARGET_ROLE.replace("target", "other")
    )
    targets = TargetClusters(
        own=ClusterConnection(
            name="x", server="http://127.0.0.1:1", token_provider=StaticToken(BearerToken("x"))
        ),
        eks=access,
    )
    connection = await targets.connection(
        Target(type=TargetType.EKS, eks=stranger), session_name="req", source_identity="alice"
    )
    from jitgrant.clusters.errors import classify_kubernetes_error

    with pytest.raises(kubernetes.client.ApiException) as caught:
        await asyncio.to_thread(act_on, connection)
    assert caught.value.status == 401
    assert classify_kubernetes_error(caught.value, cluster="prod-eu").reason == "ClusterUnauthorized"
