"""kubectl against the embedded cluster's HTTPS endpoint (kubectl sends no bearer token over plain HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from embedkube import EmbeddedCluster, User

from .conftest import GROUP, VERSION, widget

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def make_kubectl(cluster: EmbeddedCluster, tmp_path: Path, token: str, name: str) -> Kubectl:
    config = tmp_path / f"{name}.kubeconfig"
    cluster.write_kubeconfig(config, token=token, namespace="default")
    env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp_path)}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, *args], env=env, capture_output=True, text=True, input=stdin, timeout=60, check=False
        )

    return run


@pytest.fixture
def kubectl(cluster: EmbeddedCluster, tmp_path: Path) -> Kubectl:
    return make_kubectl(cluster, tmp_path, cluster.admin_token, "admin")


def test_get_create_annotate_label_delete(kubectl: Kubectl) -> None:
    assert "kube-system" in kubectl("get", "namespaces").stdout
    created = kubectl("create", "configmap", "settings", "--from-literal=mode=fast")  # a protobuf body
    assert created.returncode == 0, created.stderr
    assert kubectl("annotate", "configmap", "settings", "owner=alice").returncode == 0
    assert kubectl("label", "configmap", "settings", "tier=web").returncode == 0
    got = json.loads(kubectl("get", "configmap", "settings", "-o", "json").stdout)
    assert got["data"] == {"mode": "fast"}
    assert got["metadata"]["annotations"] == {"owner": "alice"}
    assert got["metadata"]["labels"] == {"tier": "web"}
    assert "settings" in kubectl("get", "cm", "-l", "tier=web").stdout
    assert kubectl("delete", "configmap", "settings").returncode == 0
    missing = kubectl("get", "configmap", "settings")
    assert missing.returncode == 1
    assert 'Error from server (NotFound): configmaps "settings" not found' in missing.stderr


def test_reference_scenario_restart_a_deployment(
    cluster: EmbeddedCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The on-call agent's grant: patch on deployments/checkout only, what `kubectl rollout restart` needs."""
    assert kubectl("create", "deployment", "checkout", "--image=nginx").returncode == 0  # protobuf body
    assert kubectl("create", "deployment", "ledger", "--image=nginx").returncode == 0
    assert (
        kubectl(
            "create",
            "role",
            "restart-checkout",
            "--verb=get,patch",
            "--resource=deployments.apps",
            "--resource-name=checkout",
        ).returncode
        == 0
    )
    assert (
        kubectl("create", "rolebinding", "agent", "--role=restart-checkout", "--user=agent").returncode == 0
    )
    agent = make_kubectl(cluster, tmp_path, cluster.add_user(User("agent")), "agent")
    restarted = agent("rollout", "restart", "deployment/checkout")
    assert restarted.returncode == 0, restarted.stderr
    annotations = kubectl(
        "get", "deployment", "checkout", "-o", "jsonpath={.spec.template.metadata.annotations}"
    )
    assert "kubectl.kubernetes.io/restartedAt" in annotations.stdout
    refused = agent("rollout", "restart", "deployment/ledger")
    assert refused.returncode == 1
    assert (
        'deployments.apps "ledger" is forbidden: User "agent" cannot get resource "deployments" '
        'in API group "apps" in the namespace "default"'
    ) in refused.stderr


def test_create_and_apply_from_files(kubectl: Kubectl, tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(widget("from-file", 3)))
    assert kubectl("create", "-f", str(path)).returncode == 0
    listed = kubectl("get", "widgets")
    assert listed.returncode == 0 and "from-file" in listed.stdout
    applied = kubectl(
        "apply", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
    )
    assert applied.returncode == 0, applied.stderr
    invalid = kubectl("create", "-f", "-", stdin=yaml.safe_dump(widget("bad", 99)))
    assert invalid.returncode == 1
    assert "spec.size in body should be less than or equal to 10" in invalid.stderr
    assert f"widgets.{GROUP}" in kubectl("get", "crd").stdout
    assert kubectl("get", f"widgets.{VERSION}.{GROUP}", "from-file").returncode == 0


def test_auth_can_i_and_forbidden(cluster: EmbeddedCluster, kubectl: Kubectl, tmp_path: Path) -> None:
    token = cluster.add_user(User("viewer"))
    assert kubectl("create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer").returncode == 0
    as_viewer = make_kubectl(cluster, tmp_path, token, "viewer")
    assert as_viewer("auth", "can-i", "list", "pods").stdout.strip() == "yes"
    assert as_viewer("auth", "can-i", "delete", "pods").stdout.strip() == "no"
    assert as_viewer("auth", "can-i", "list", "pods", "-n", "kube-system").stdout.strip() == "no"
    assert as_viewer("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == "viewer"
    denied = as_viewer("create", "configmap", "x")
    assert denied.returncode == 1
    assert 'User "viewer" cannot create resource "configmaps" in API group "" in the namespace "default"' in (
        denied.stderr
    )


def test_service_account_token_from_kubectl(
    cluster: EmbeddedCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert kubectl("create", "serviceaccount", "agent").returncode == 0
    token = kubectl("create", "token", "agent", "--duration=10m").stdout.strip()
    as_agent = make_kubectl(cluster, tmp_path, token, "agent")
    assert as_agent("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == (
        "system:serviceaccount:default:agent"
    )
    short = kubectl("create", "token", "agent", "--duration=5m")
    assert short.returncode == 1 and "may not specify a duration less than 10 minutes" in short.stderr
