"""The embedded API server writes its audit log in kube-apiserver's format, and `jitgrant activity`
reads it: the agent's allowed calls exactly attributed, its refused ones by identity and window."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from embedkube import EmbeddedCluster
from embedkube.authn import User
from jitgrant.activity.attribution import Basis, GrantIdentity, Outcome, activity
from jitgrant.activity.sources import AuditLogFiles, Window
from jitgrant.cli.main import main as run

AGENT = "system:serviceaccount:agents:oncall"
CRDS = Path(__file__).parents[2] / "crds"
REASON = (
    'RBAC: allowed by RoleBinding "jit-restart-checkout/payments" of ClusterRole "jit-restart" '
    'to ServiceAccount "oncall/agents"'
)


@pytest.fixture
def audit_log(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.log"


@pytest.fixture
def cluster(audit_log: Path) -> Iterator[EmbeddedCluster]:
    crds = [yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))]
    with EmbeddedCluster(crd_manifests=crds, audit_log=audit_log) as cluster:
        for namespace in ("agents", "payments"):
            cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        cluster.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "jit-restart"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}],
            }
        )
        cluster.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "jit-restart-checkout", "namespace": "payments"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "jit-restart",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "oncall", "namespace": "agents"}],
            }
        )
        for name in ("checkout", "ledger"):
            cluster.create(deployment(name), namespace="payments")
        yield cluster


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "payments"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


def agent_work(cluster: EmbeddedCluster) -> None:
    """The demo's agent: restarts checkout (allowed), then tries the other deployment (refused)."""
    token = cluster.add_user(
        User(AGENT, "sa-uid", ("system:serviceaccounts", "system:serviceaccounts:agents"))
    )
    with cluster.api_client(token=token) as client:
        apps = kubernetes.client.AppsV1Api(client)
        apps.read_namespaced_deployment("checkout", "payments")
        restart = {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
        apps.patch_namespaced_deployment("checkout", "payments", restart)
        with pytest.raises(ApiException) as refused:
            apps.delete_namespaced_deployment("ledger", "payments")
        assert refused.value.status == 403


def file_active_request(cluster: EmbeddedCluster) -> None:
    """The AccessRequest as the operator leaves it once the grant is active."""
    activated = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    cluster.create(
        {
            "apiVersion": "jitgrant.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": "restart-checkout", "namespace": "agents"},
            "spec": {
                "policy": "oncall-restart",
                "namespace": "payments",
                "clusterRole": "jit-restart",
                "duration": "15m",
                "justification": "checkout is stuck: restart it",
                "requester": {"username": AGENT, "provenBy": "kubernetes"},
            },
        }
    )
    status = {
        "phase": "Active",
        "activatedAt": activated.isoformat().replace("+00:00", "Z"),
        "expiresAt": (activated + timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        "grant": {"cluster": "self", "namespace": "payments", "roleBinding": "jit-restart-checkout"},
    }
    set_status(cluster, status)


def set_status(cluster: EmbeddedCluster, status: dict[str, Any]) -> None:
    with cluster.api_client() as admin:
        kubernetes.client.CustomObjectsApi(admin).patch_namespaced_custom_object_status(
            "jitgrant.dev", "v1alpha1", "agents", "accessrequests", "restart-checkout", {"status": status}
        )


def test_the_log_has_kube_apiservers_fields_and_the_rbac_reason_verbatim(
    cluster: EmbeddedCluster, audit_log: Path
) -> None:
    agent_work(cluster)
    events = [json.loads(line) for line in audit_log.read_text().splitlines()]
    patch = next(e for e in events if e["verb"] == "patch" and e["user"]["username"] == AGENT)
    assert {
        "kind",
        "apiVersion",
        "level",
        "auditID",
        "stage",
        "requestURI",
        "verb",
        "user",
        "sourceIPs",
        "userAgent",
        "objectRef",
        "responseStatus",
        "requestReceivedTimestamp",
        "stageTimestamp",
        "annotations",
    } == set(patch)
    assert (patch["apiVersion"], patch["stage"], patch["responseStatus"]["code"]) == (
        "audit.k8s.io/v1",
        "ResponseComplete",
        200,
    )
    assert patch["objectRef"] == {
        "resource": "deployments",
        "namespace": "payments",
        "name": "checkout",
        "apiGroup": "apps",
        "apiVersion": "v1",
    }
    assert patch["annotations"] == {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": REASON,
    }
    refused = next(e for e in events if e["verb"] == "delete")
    assert refused["annotations"] == {
        "authorization.k8s.io/decision": "forbid",
        "authorization.k8s.io/reason": "",
    }
    assert refused["responseStatus"]["code"] == 403 and refused["responseStatus"]["reason"] == "Forbidden"


def test_activity_from_the_embedded_servers_log(cluster: EmbeddedCluster, audit_log: Path) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    agent_work(cluster)
    grant = GrantIdentity(
        binding_name="jit-restart-checkout",
        binding_namespace="payments",
        usernames=frozenset({AGENT}),
        start=start,
    )
    found = activity(AuditLogFiles(audit_log).calls(Window(start=start, end=None)), grant)
    assert [(item.call.verb, item.call.name, item.call.code, item.outcome, item.basis) for item in found] == [
        ("get", "checkout", 200, Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON),
        ("patch", "checkout", 200, Outcome.THIS_GRANT, Basis.AUTHORIZATION_REASON),
        ("delete", "ledger", 403, Outcome.REFUSED, Basis.IDENTITY_WINDOW),
    ]


def test_jitgrant_activity_lists_the_grants_calls(
    cluster: EmbeddedCluster, audit_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file_active_request(cluster)
    agent_work(cluster)
    kubeconfig = tmp_path / "kubeconfig"
    cluster.write_kubeconfig(kubeconfig, token=cluster.admin_token)
    argv = [
        "activity",
        "restart-checkout",
        "-n",
        "agents",
        "--kubeconfig",
        str(kubeconfig),
        "--audit-log",
        str(audit_log),
    ]

    assert run([*argv, "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["roleBinding"] == "payments/jit-restart-checkout" and document["identities"] == [AGENT]
    assert [(c["verb"], c["name"], c["code"], c["outcome"], c["attribution"]) for c in document["calls"]] == [
        ("get", "checkout", 200, "allowed by this grant", "authorization-reason"),
        ("patch", "checkout", 200, "allowed by this grant", "authorization-reason"),
        ("delete", "ledger", 403, "refused", "identity-window"),
    ]
    assert document["counts"]["refused"] == 1

    assert run(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [
        "TIME",
        "VERB",
        "RESOURCE",
        "OBJECT",
        "CODE",
        "OUTCOME",
        "ATTRIBUTION",
        "USER-AGENT",
    ]
    rows = [re.split(r"\s{2,}", line)[1:7] for line in lines[2:5]]
    assert rows == [
        ["get", "apps/deployments", "payments/checkout", "200", "allowed by this grant", "exact"],
        ["patch", "apps/deployments", "payments/checkout", "200", "allowed by this grant", "exact"],
        ["delete", "apps/deployments", "payments/ledger", "403", "refused", "identity+window"],
    ]
    assert lines[5] == "3 calls: 2 allowed by this grant, 1 refused"


def test_follow_prints_each_call_as_it_comes_and_stops_when_the_grant_ends(
    cluster: EmbeddedCluster, audit_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file_active_request(cluster)
    kubeconfig = tmp_path / "kubeconfig"
    cluster.write_kubeconfig(kubeconfig, token=cluster.admin_token)
    argv = ["activity", "restart-checkout", "-n", "agents", "--kubeconfig", str(kubeconfig)]
    argv += ["--audit-log", str(audit_log), "--follow", "--interval", "0.05", "-o", "json"]
    exit_codes: list[int] = []
    follower = threading.Thread(target=lambda: exit_codes.append(run(argv)))
    follower.start()
    time.sleep(0.3)  # the follower has read once and waits for more
    agent_work(cluster)
    time.sleep(0.3)
    set_status(cluster, {"phase": "Expired", "endedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    follower.join(timeout=20)
    assert not follower.is_alive() and exit_codes == [0]
    calls = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(call["verb"], call["outcome"]) for call in calls] == [
        ("get", "allowed by this grant"),
        ("patch", "allowed by this grant"),
        ("delete", "refused"),
    ]


def test_rbac_writes_are_logged_with_request_and_response_objects(
    cluster: EmbeddedCluster, audit_log: Path
) -> None:
    with cluster.api_client() as admin:
        kubernetes.client.RbacAuthorizationV1Api(admin).create_namespaced_role(
            "payments", {"metadata": {"name": "audited"}, "rules": []}
        )
        kubernetes.client.AppsV1Api(admin).read_namespaced_deployment("checkout", "payments")
    events = [json.loads(line) for line in audit_log.read_text().splitlines()]
    event = next(e for e in events if e["verb"] == "create" and e["objectRef"].get("name") == "audited")
    assert (
        event["level"] == "RequestResponse" and event["objectRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    )
    assert event["requestObject"]["metadata"]["name"] == "audited"
    assert event["responseObject"]["metadata"]["uid"]
    assert list(event)[-5:] == [
        "requestObject",
        "responseObject",
        "requestReceivedTimestamp",
        "stageTimestamp",
        "annotations",
    ]
    # Everything else stays at Metadata: no bodies.
    other = next(e for e in events if e["objectRef"].get("resource") == "deployments")
    assert other["level"] == "Metadata" and "requestObject" not in other
