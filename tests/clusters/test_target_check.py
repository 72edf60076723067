"""`jitgrant target check NAME`: the operator's way into an EKS target, step by step, with what is missing.

Against moto (STS, EKS) and an EKS stand-in that authenticates EKS tokens and holds docs/eks.md's
RBAC for one grantable ClusterRole; the policies also name a ClusterRole the cluster lacks.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitgrant.cli.main import main
from jitgrant_testing.aws import OPERATOR_KEY_ID, OPERATOR_SECRET, AWSStandIns, ClusterSpec
from jitgrant_testing.environment import EXAMPLES, load_manifests

SPEC = ClusterSpec("prod-eu")


@pytest.fixture(scope="module")
def aws() -> Iterator[AWSStandIns]:
    grantable = load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml")
    with AWSStandIns(clusters=(SPEC,), grantable_cluster_roles=grantable, deployments=()) as standins:
        yield standins


@pytest.fixture(autouse=True)
def operator_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own AWS credentials, as IRSA would give them (moto accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OPERATOR_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def policies(tmp_path: Path, target: dict[str, Any], roles: list[str]) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "restart-prod"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "agent"}]},
                    "target": target,
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": role} for role in roles],
                },
            }
        )
    )
    return path


def check(aws: AWSStandIns, tmp_path: Path, name: str, policy_file: Path) -> tuple[int, str]:
    standin = aws.standin(SPEC.name)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(standin.cluster.ca_pem)
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "target", "check", name, "-f", str(policy_file),
                "--aws-endpoint-url", aws.moto.url,
                "--server", standin.cluster.https_url, "--certificate-authority", str(ca),
            ]
        )  # fmt: skip
    return code, out.getvalue()


def test_every_step_passes_and_a_missing_grantable_role_is_named(aws: AWSStandIns, tmp_path: Path) -> None:
    policy_file = policies(tmp_path, aws.target(SPEC.name), ["jit-restart-checkout", "jit-debug-pods"])
    code, text = check(aws, tmp_path, SPEC.name, policy_file)
    lines = text.splitlines()
    assert lines[0] == f"{SPEC.arn} (GrantPolicy restart-prod)"
    passed = [line for line in lines if line.startswith("  ok ")]
    missing = [line.strip() for line in lines if "MISSING" in line or "unknown" in line]
    assert any("AssumeRole arn:aws:iam::111122223333:role/jitgrant-target" in line for line in passed)
    assert any("DescribeCluster prod-eu in eu-west-1" in line for line in passed)
    assert any("the cluster accepts the token" in line for line in passed)
    assert any("may create rolebindings in payments" in line for line in passed)
    assert any("may bind clusterroles jit-restart-checkout cluster-wide" in line for line in passed)
    assert any("may create serviceaccounts/token in jitgrant-grants" in line for line in passed)
    # The role no access was set up for: not bindable, and whether it exists the operator may not see.
    assert sorted(missing) == [
        "MISSING may bind clusterroles jit-debug-pods cluster-wide",
        "MISSING may get clusterroles jit-debug-pods cluster-wide",
        "unknown grantable ClusterRole jit-debug-pods exists: 403 Forbidden",
    ], text
    assert code == 1 and "3 check(s) did not pass" in text


def test_a_cluster_eks_does_not_know_stops_at_describe(aws: AWSStandIns, tmp_path: Path) -> None:
    ghost = dict(aws.target(SPEC.name))
    ghost["eks"] = {**ghost["eks"], "clusterName": "ghost"}
    code, text = check(aws, tmp_path, "ghost", policies(tmp_path, ghost, ["jit-restart-checkout"]))
    assert code == 1
    lines = [line.strip() for line in text.splitlines()[1:]]
    assert lines[0].startswith("ok      AssumeRole")
    assert lines[1].startswith("MISSING DescribeCluster: EKSClusterNotFound: EKS cluster ghost not found")
    assert len(lines) == 3  # nothing after the failed step, then the summary
