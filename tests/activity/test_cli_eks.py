"""`jitgrant activity --eks-cluster`: the same view from CloudWatch Logs (moto on 127.0.0.1), and a
clear message when control-plane audit logging is off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml

from embedkube import EmbeddedCluster
from jitgrant.cli.main import main as run

from .conftest import AGENT, audit_event
from .test_embedded import CRDS, set_status

NOW = datetime.now(UTC).replace(microsecond=0)
ACTIVATED = NOW - timedelta(minutes=10)


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[Path]:
    crds = [yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))]
    with EmbeddedCluster(crd_manifests=crds) as cluster:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "agents"}})
        cluster.create(
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "AccessRequest",
                "metadata": {"name": "restart-checkout", "namespace": "agents"},
                "spec": {
                    "policy": "eks-restart",
                    "namespace": "payments",
                    "clusterRole": "jit-restart",
                    "justification": "checkout is stuck: restart it",
                    "requester": {"username": AGENT, "provenBy": "kubernetes"},
                },
            }
        )
        stamp = ACTIVATED.isoformat().replace("+00:00", "Z")
        grant = {"cluster": "prod-eu", "namespace": "payments", "roleBinding": "jit-restart-checkout"}
        set_status(cluster, {"phase": "Active", "activatedAt": stamp, "grant": grant})
        path = tmp_path / "kubeconfig"
        cluster.write_kubeconfig(path, token=cluster.admin_token)
        yield path


def test_activity_from_cloudwatch_logs(
    kubeconfig: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = boto3.client("logs", endpoint_url=endpoint, region_name="eu-west-1")
    group, stream = "/aws/eks/prod-eu/cluster", "kube-apiserver-audit-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    events = [
        audit_event(verb="patch", audit_id="p", at=ACTIVATED + timedelta(minutes=1)),
        audit_event(
            verb="delete", code=403, name="ledger", audit_id="d", at=ACTIVATED + timedelta(minutes=2)
        ),
    ]
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {
                "timestamp": int((ACTIVATED + timedelta(minutes=1 + i)).timestamp() * 1000),
                "message": json.dumps(e),
            }
            for i, e in enumerate(events)
        ],
    )
    try:
        argv = ["activity", "restart-checkout", "-n", "agents", "--kubeconfig", str(kubeconfig)]
        argv += [
            "--eks-cluster",
            "prod-eu",
            "--region",
            "eu-west-1",
            "--endpoint-url",
            endpoint,
            "-o",
            "json",
        ]
        assert run(argv) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["source"] == "CloudWatch Logs /aws/eks/prod-eu/cluster"
        assert [(c["verb"], c["outcome"], c["attribution"]) for c in document["calls"]] == [
            ("patch", "allowed by this grant", "authorization-reason"),
            ("delete", "refused", "identity-window"),
        ]
    finally:
        logs.delete_log_group(logGroupName=group)
        logs.close()


def test_audit_logging_off_is_a_clear_error(
    kubeconfig: Path,
    endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["activity", "restart-checkout", "-n", "agents", "--kubeconfig", str(kubeconfig)]
    argv += ["--eks-cluster", "staging", "--region", "eu-west-1", "--endpoint-url", endpoint]
    assert run(argv) == 4
    error = capsys.readouterr().err
    assert (
        "error: log group /aws/eks/staging/cluster does not exist: control-plane audit logging is off"
        in error
    )
    assert "aws eks update-cluster-config --name staging" in error
