"""`jitgrant target check`: walk what the operator needs in one EKS target cluster, as the operator
would (AssumeRole, DescribeCluster, an EKS token, the access entry, each RBAC right, each grantable
ClusterRole), and say which step is missing. The CLI computes what is wanted from the policies; the
calls live here, beside the adapters they use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubernetes.client import AuthorizationV1Api, RbacAuthorizationV1Api, VersionApi
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.connection import ClusterConnection
from jitgrant.clusters.eks import EKSAccess, EKSTokenProvider, RegionEndpoints
from jitgrant.clusters.errors import ClusterAccessError, classify_kubernetes_error
from jitgrant.models import EKSTarget


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool | None  # None: could not be checked (an earlier step failed, or the cluster would not say)
    detail: str = ""


def run_checks(
    target: EKSTarget,
    wanted: Sequence[tuple[str, Mapping[str, str]]],
    cluster_roles: Sequence[str],
    *,
    grants_namespace: str,
    aws_endpoint_url: str | None = None,
    server: tuple[str, bytes | None] | None = None,
) -> list[Check]:
    endpoints = RegionEndpoints(sts=aws_endpoint_url, eks=aws_endpoint_url)
    access = EKSAccess(
        default_endpoints=endpoints,
        endpoint_overrides={target.arn: server} if server is not None else None,
    )
    session_name = "jitgrant-target-check"
    checks: list[Check] = []
    try:
        session = access.assume(target, session_name=session_name, source_identity=session_name)
        checks.append(Check(f"AssumeRole {target.role_arn}", True, session.assumed_role_arn))
        endpoint = access.describe(target, session)
        checks.append(
            Check(f"DescribeCluster {target.cluster_name} in {target.region}", True, endpoint.server)
        )
        access.eks_token(session, target.cluster_name)
        checks.append(Check("EKS token signed", True, f"for cluster {target.cluster_name}"))
    except ClusterAccessError as exc:
        step = ("AssumeRole", "DescribeCluster", "EKS token")[len(checks)]
        checks.append(Check(step, False, f"{exc.reason}: {exc.message}"))
        return checks
    connection = ClusterConnection(
        name=target.arn,
        server=endpoint.server,
        ca_pem=endpoint.ca_pem if endpoint.server.startswith("https://") else None,
        token_provider=EKSTokenProvider(
            access, target, session_name=session_name, source_identity=session_name
        ),
    )
    with connection.to_api_client() as client:
        try:
            VersionApi(client).get_code(_request_timeout=(5, 20))
            authorization = AuthorizationV1Api(client)
            authorization.create_self_subject_rules_review(
                {"spec": {"namespace": grants_namespace}}, _request_timeout=(5, 20)
            )
            checks.append(Check("the cluster accepts the token (access entry)", True, endpoint.server))
        except Exception as exc:
            error = (
                classify_kubernetes_error(exc, cluster=target.arn)
                if not isinstance(exc, ClusterAccessError)
                else exc
            )
            checks.append(
                Check(
                    "the cluster accepts the token (access entry)", False, f"{error.reason}: {error.message}"
                )
            )
            return checks
        for what, attributes in wanted:
            review = authorization.create_self_subject_access_review(
                {"spec": {"resourceAttributes": attributes}}, _request_timeout=(5, 20)
            )
            checks.append(Check(f"may {what}", bool(review.status.allowed), review.status.reason or ""))
        rbac = RbacAuthorizationV1Api(client)
        for role in cluster_roles:
            try:
                rbac.read_cluster_role(role, _request_timeout=(5, 20))
                checks.append(Check(f"grantable ClusterRole {role} exists", True))
            except ApiException as exc:
                missing = exc.status == 404
                detail = "not found: create it there" if missing else f"{exc.status} {exc.reason}"
                checks.append(
                    Check(f"grantable ClusterRole {role} exists", False if missing else None, detail)
                )
    return checks
