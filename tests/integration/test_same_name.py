"""Two EKS clusters with the same name in two regions (normal across regions and accounts) are two
targets: each grant is created and removed in its own cluster, and the sweep covers both.

Before clusters were keyed by identity, the us-east-1 grant's DELETE went to the eu-west-1 cluster
(one housekeeping client per name), got 404, which counts as "already gone": the request said
Expired while its RoleBinding stayed, and the sweep (one cluster per name) never came to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import RbacAuthorizationV1Api

from jitgrant.grants.ownership import owner_seal
from jitgrant.models.vocabulary import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OWNER_SEAL_ANNOTATION,
    REQUEST_ANNOTATION,
    REQUEST_UID_LABEL,
    format_time,
)
from jitgrant_testing.aws import AWSStandIns, ClusterSpec, EKSStandIn
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import request_manifest, wait_for_phase, wait_until

NS = "agents"
NAME = "fleet-000"
EU_WEST, US_EAST = ClusterSpec(NAME), ClusterSpec(NAME, region="us-east-1")


@pytest.fixture
def fleet() -> Iterator[tuple[AWSStandIns, Environment]]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with (
        AWSStandIns(
            clusters=(EU_WEST, US_EAST),
            grantable_cluster_roles=grantable,
            namespaces=("payments", "orders", NS),
        ) as aws,
        Environment(runtime_hook=aws.runtime_hook, sweep_interval=timedelta(seconds=2)) as env,
    ):
        for spec in (EU_WEST, US_EAST):
            env.apply(
                [
                    {
                        "apiVersion": "jitgrant.dev/v1alpha1",
                        "kind": "GrantPolicy",
                        "metadata": {"name": f"restart-{spec.region}"},
                        "spec": {
                            "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                            "target": aws.target(aws.key_of(spec)),
                            "namespaces": ["payments"],
                            "grants": [{"clusterRole": "jit-restart-checkout"}],
                        },
                    }
                ]
            )
        env.allow_to_request(NS, service_account="oncall-agent")
        yield aws, env


def test_each_grant_is_created_and_removed_in_its_own_same_named_cluster(
    fleet: tuple[AWSStandIns, Environment],
) -> None:
    aws, env = fleet
    agent = env.client_for_service_account(NS, "oncall-agent")
    standins = {spec.region: aws.standin(aws.key_of(spec)) for spec in (EU_WEST, US_EAST)}
    for spec in (EU_WEST, US_EAST):
        manifest = request_manifest(f"to-{spec.region}", policy=f"restart-{spec.region}", duration="8s")
        env.create_request(manifest, client=agent)

    grants: dict[str, dict[str, Any]] = {}
    for spec in (EU_WEST, US_EAST):
        grants[spec.region] = wait_for_phase(env, NS, f"to-{spec.region}", "Active")["status"]["grant"]
    for spec in (EU_WEST, US_EAST):
        # Each binding exists in its own cluster only.
        assert standins[spec.region].managed("payments") == [
            f"RoleBinding/{grants[spec.region]['roleBinding']}"
        ]
        # The operator's session there was the request meant for that cluster.
        assert f"jitgrant:jitgrant-agents-to-{spec.region}" in {
            u for u, _ in standins[spec.region].authenticated
        }

    for spec in (EU_WEST, US_EAST):
        ended = wait_for_phase(env, NS, f"to-{spec.region}", "Expired", timeout=30.0)
        assert ended["status"]["reason"] == "Expired"
    for spec in (EU_WEST, US_EAST):
        # Removed where it was made: not a 404 from the other cluster taken for "already gone".
        assert standins[spec.region].managed("payments") == [], f"the binding stayed in {spec.region}"
    for spec in (EU_WEST, US_EAST):
        # The grant record names the cluster by identity, and keeps the target to reach it again.
        assert grants[spec.region]["cluster"] == spec.arn
        assert grants[spec.region]["target"]["eks"]["region"] == spec.region

    def granted() -> bool | None:
        records = [line for line in env.audit_file.read_text().splitlines() if '"type":"granted"' in line]
        return (any(EU_WEST.arn in r for r in records) and any(US_EAST.arn in r for r in records)) or None

    wait_until(granted, timeout=10.0, what="a granted record naming each cluster's ARN")


def _leftover(standin: EKSStandIn, *, key: bytes, cluster: str, name: str) -> None:
    """A RoleBinding the operator made (sealed with its key) whose request is gone, past its window:
    what an operator killed mid-grant leaves behind."""
    uid = f"gone-{name}"
    past = format_time(datetime.now(UTC) - timedelta(minutes=5))
    seal = owner_seal(
        key=key, cluster=cluster, kind="RoleBinding", namespace="payments", name=name, request_uid=uid
    )
    RbacAuthorizationV1Api(standin.admin).create_namespaced_role_binding(
        "payments",
        {
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: uid},
                "annotations": {
                    OWNER_SEAL_ANNOTATION: seal,
                    EXPIRES_AT_ANNOTATION: past,
                    REQUEST_ANNOTATION: f"{NS}/{name}",
                },
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "jit-restart-checkout",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": NS}],
        },
    )


def test_the_sweep_removes_a_leftover_binding_in_each_same_named_cluster(
    fleet: tuple[AWSStandIns, Environment],
) -> None:
    aws, env = fleet
    for spec in (EU_WEST, US_EAST):
        standin = aws.standin(aws.key_of(spec))
        # One sealed over the cluster's identity, one over its bare name (what an operator before
        # identities wrote): both are proven the operator's, in the cluster they are in.
        _leftover(standin, key=env.receipt_key, cluster=spec.arn, name=f"jit-left-{spec.region}")
        _leftover(standin, key=env.receipt_key, cluster=NAME, name=f"jit-old-{spec.region}")

    def left(spec: ClusterSpec) -> list[str]:
        return aws.standin(aws.key_of(spec)).managed("payments")

    # The old-style ones first: they are proven the operator's by any version, so this shows both
    # clusters are swept (not one per name).
    for spec in (EU_WEST, US_EAST):
        wait_until(
            lambda spec=spec: f"RoleBinding/jit-old-{spec.region}" not in left(spec) or None,  # type: ignore[misc]
            timeout=20.0,
            what=f"the sweep to remove the leftover in {spec.region}",
        )
    for spec in (EU_WEST, US_EAST):
        wait_until(
            lambda spec=spec: left(spec) == [] or None,  # type: ignore[misc]
            timeout=20.0,
            what=f"the sweep to remove every leftover in {spec.region}",
        )

    def recorded() -> bool | None:
        removed = [line for line in env.audit_file.read_text().splitlines() if '"type":"cleaned-up"' in line]
        return all(sum(spec.arn in line for line in removed) == 2 for spec in (EU_WEST, US_EAST)) or None

    wait_until(recorded, timeout=10.0, what="a cleaned-up record per leftover, naming its cluster's ARN")
