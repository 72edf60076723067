"""`jitgrant target manifests`: what it renders is what the operator needs in a target and no more.

The Kubernetes output is applied to an embedded API server (RBAC with the escalation checks on) and
the access entry's group then tries what the operator does there, and what it must not.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from embedkube import EmbeddedCluster, User
from jitgrant.cli.main import main

EU = "arn:aws:eks:eu-west-1:111122223333:cluster/prod"
US = "arn:aws:eks:us-east-1:444455556666:cluster/prod"


def policy(name: str, region: str, account: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": name},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "agent"}]},
            "target": {
                "type": "EKS",
                "eks": {
                    "clusterName": "prod",
                    "region": region,
                    "roleArn": f"arn:aws:iam::{account}:role/jitgrant-target",
                },
            },
            "namespaces": ["payments"],
            "grants": [{"clusterRole": role}],
        },
    }


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(
        yaml.safe_dump_all(
            [
                policy("prod-eu", "eu-west-1", "111122223333", "jit-restart-checkout"),
                policy("prod-us", "us-east-1", "444455556666", "view"),
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
            ]
        )
    )
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["target", "manifests", *argv])
    return code, out.getvalue()


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(name="target") as embedded:
        yield embedded


def test_the_rendered_rbac_lets_the_operator_do_its_work_there_and_nothing_more(
    policies: Path, cluster: EmbeddedCluster
) -> None:
    code, text = run("-f", str(policies), "--cluster", EU)
    assert code == 0
    assert text.startswith(f"# {EU}: for GrantPolicy prod-eu;") and US not in text
    admin = cluster.api_client()
    core, rbac = CoreV1Api(admin), RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": "payments"}})
    for name in ("jit-restart-checkout", "secrets-reader"):
        rbac.create_cluster_role(
            {
                "metadata": {"name": name},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            }
        )
    for document in yaml.safe_load_all(text):
        kind = document["kind"]
        if kind == "Namespace":
            core.create_namespace(document)
        elif kind == "ClusterRole":
            rbac.create_cluster_role(document)
        elif kind == "ClusterRoleBinding":
            rbac.create_cluster_role_binding(document)
        elif kind == "Role":
            rbac.create_namespaced_role(document["metadata"]["namespace"], document)
        else:
            rbac.create_namespaced_role_binding(document["metadata"]["namespace"], document)
    # What the access entry maps the target role to.
    token = cluster.add_user(User("jitgrant:jitgrant-agents-r1", "uid-r1", ("jitgrant:operators",)))
    operator = cluster.api_client(token=token)
    op_rbac, op_core = RbacAuthorizationV1Api(operator), CoreV1Api(operator)

    def binding(role: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"jit-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
        }

    # Its work: grant the policy's ClusterRole, see and remove grants, a ServiceAccount per grant.
    op_rbac.create_namespaced_role_binding("payments", binding("jit-restart-checkout"))
    listed = op_rbac.list_role_binding_for_all_namespaces().items
    assert "jit-jit-restart-checkout" in [b.metadata.name for b in listed]
    op_core.create_namespaced_service_account("jitgrant-grants", {"metadata": {"name": "grant-sa"}})
    op_rbac.delete_namespaced_role_binding("jit-jit-restart-checkout", "payments")
    # Nothing more: another ClusterRole (one no policy grants), Secrets, accounts elsewhere.
    attempts = {
        "bind a ClusterRole no policy grants": lambda: op_rbac.create_namespaced_role_binding(
            "payments", binding("secrets-reader")
        ),
        "read Secrets": lambda: op_core.list_namespaced_secret("payments"),
        "a ServiceAccount outside the grants namespace": lambda: op_core.create_namespaced_service_account(
            "payments", {"metadata": {"name": "sneaky"}}
        ),
        "write ClusterRoles": lambda: op_rbac.create_cluster_role(
            {"metadata": {"name": "mine"}, "rules": []}
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ApiException) as refused:
            attempt()
        assert refused.value.status == 403, what
    [reason] = [refused.value.body]
    assert "forbidden" in str(reason)
    operator.close()
    admin.close()


def test_the_access_entry_for_each_same_named_cluster_by_its_arn(policies: Path) -> None:
    code, text = run("-f", str(policies), "--format", "aws")
    assert code == 0
    assert f"# {EU}" in text and f"# {US}" in text
    assert "--cluster-name prod --region eu-west-1 \\\n  --principal-arn arn:aws:iam::111122223333" in text
    assert "--cluster-name prod --region us-east-1 \\\n  --principal-arn arn:aws:iam::444455556666" in text
    assert text.count("--username 'jitgrant:{{SessionName}}'") == 2
    assert text.count("--kubernetes-groups jitgrant:operators") == 2
    code, text = run("-f", str(policies), "--format", "terraform")
    assert code == 0
    assert (
        '"jitgrant_prod_eu_west_1_111122223333"' in text and '"jitgrant_prod_us_east_1_444455556666"' in text
    )


def test_a_cluster_no_policy_names_is_refused_with_what_there_is(
    policies: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("-f", str(policies), "--cluster", "staging")
    assert code == 2
    error = capsys.readouterr().err
    assert "no GrantPolicy" in error and "EKS cluster staging" in error and EU in error and US in error


def test_a_policy_that_does_not_parse_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = policy("broken", "eu-west-1", "111122223333", "view")
    del broken["spec"]["namespaces"]
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    code, _ = run("-f", str(path))
    assert code == 2
    assert "GrantPolicy broken:" in capsys.readouterr().err
