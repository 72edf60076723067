"""The operator's Deployment: one replica, Recreate, locked down, probed, and started with the
flags the operator's CLI accepts."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

from jitgrant.audit.config import AuditConfig

from .conftest import COMBINATIONS, NAMESPACE, ROLE_ARN, Manifest, only, render

EXPECTED_ARGS = [
    "run",
    "--namespace-of-operator", "$(POD_NAMESPACE)",
    "--grants-namespace", "jitgrant-grants",
    "--webhook-port", "9443",
    "--webhook-cert", "/etc/jitgrant/webhook/tls.crt",
    "--webhook-key", "/etc/jitgrant/webhook/tls.key",
    "--metrics-port", "8080",
    "--health-port", "8081",
    "--audit-config", "/etc/jitgrant/audit/config.yaml",
    "--receipt-key-file", "/etc/jitgrant/receipt/key",
    "--leader-elect",
    "--log-level", "info",
    "--log-format", "text",
    "--finished-retention", "168h",
    "--concurrency", "8",
    "--jwks-cache-ttl", "300",
    "--jwks-refetch-interval", "5",
    "--identity-fetch-budget", "3",
]  # fmt: skip


def pod_specs(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """Every pod the chart can start: the operator and the uninstall hook."""
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "Job")]


def operator(manifests: list[Manifest]) -> dict[str, Any]:
    container: dict[str, Any] = only(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_replicas_elect_a_leader_and_roll_one_at_a_time(chart: helm.Chart, combination: str) -> None:
    deployment = only(render(chart, COMBINATIONS[combination]), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    # On the host network a surge pod cannot share a node with the pod it replaces (its ports).
    one_at_a_time = {"maxUnavailable": 1, "maxSurge": 0}
    surge = {"maxUnavailable": 0, "maxSurge": 1}
    host_network = COMBINATIONS[combination].get("hostNetwork", False)
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": one_at_a_time if host_network else surge,
    }
    assert "--leader-elect" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_pod_runs_locked_down(chart: helm.Chart, combination: str) -> None:
    specs = pod_specs(render(chart, COMBINATIONS[combination]))
    assert specs
    for spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] > 0
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["privileged"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][kind].keys()
            # A read-only root needs somewhere to write temporary files.
            assert any(mount["mountPath"] == "/tmp" for mount in container["volumeMounts"])


def test_probes_point_at_health_endpoints(chart: helm.Chart) -> None:
    container = operator(render(chart))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"webhook": 9443, "metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The kubelet's timeout is what turns a blocked event loop into a failed liveness probe.
    assert container["livenessProbe"]["timeoutSeconds"] <= 10


def test_operator_flags(chart: helm.Chart) -> None:
    container = operator(render(chart))
    assert container["args"] == EXPECTED_ARGS
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["OPERATOR_SERVICE_ACCOUNT"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "spec.serviceAccountName"}
    }
    assert "AWS_REGION" not in env

    custom = operator(
        render(
            chart,
            {
                "inlineRules": {"enabled": True},
                "grantableClusterRoles": [],
                "metrics": {"port": 9090},
                "health": {"port": 9091},
                "webhook": {"port": 10443},
                "eks": {"region": "eu-west-1"},
            },
        )
    )
    args = custom["args"]
    assert "--inline-rules" in args
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert args[args.index("--health-port") + 1] == "9091"
    assert args[args.index("--webhook-port") + 1] == "10443"
    ports = {port["name"]: port["containerPort"] for port in custom["ports"]}
    assert ports == {"webhook": 10443, "metrics": 9090, "health": 9091}
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in custom["env"]


def test_image_is_pinned(chart: helm.Chart) -> None:
    assert operator(render(chart))["image"] == f"ghcr.io/jitgrant/jitgrant:{chart.metadata['appVersion']}"
    tagged = operator(render(chart, {"image": {"tag": "0.2.0"}}))
    assert tagged["image"] == "ghcr.io/jitgrant/jitgrant:0.2.0"
    digest = "sha256:" + "b" * 64
    assert (
        operator(render(chart, {"image": {"digest": digest}}))["image"]
        == f"ghcr.io/jitgrant/jitgrant@{digest}"
    )
    for manifest in render(chart, {"image": {"digest": digest}}):
        for spec in pod_specs([manifest]):
            assert all(c["image"].endswith(digest) for c in spec["containers"])


def test_service_account_carries_the_irsa_role_only_when_set(chart: helm.Chart) -> None:
    default = only(render(chart), "ServiceAccount", "jitgrant")
    assert "eks.amazonaws.com/role-arn" not in default["metadata"].get("annotations", {})
    manifests = render(chart, COMBINATIONS["eks-role"])
    account = only(manifests, "ServiceAccount", "jitgrant")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "jitgrant"
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def mounts(manifests: list[Manifest]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """mountPath -> (volumeMount, volume) for the operator container."""
    spec = only(manifests, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in spec["containers"][0]["volumeMounts"]}


def test_files_named_by_the_flags_are_mounted(chart: helm.Chart) -> None:
    manifests = render(chart)
    mounted = mounts(manifests)
    tls_mount, tls_volume = mounted["/etc/jitgrant/webhook"]
    assert tls_mount["readOnly"] is True
    assert tls_volume["secret"]["secretName"] == "jitgrant-webhook-tls"
    assert {"tls.crt", "tls.key"} <= only(manifests, "Secret", "jitgrant-webhook-tls")["data"].keys()

    audit_mount, audit_volume = mounted["/etc/jitgrant/audit/config.yaml"]
    assert audit_mount["subPath"] == "config.yaml"
    assert audit_volume["configMap"]["name"] == "jitgrant-audit"

    key_mount, key_volume = mounted["/etc/jitgrant/receipt"]
    assert key_mount["readOnly"] is True
    assert key_volume["secret"]["secretName"] == "jitgrant-receipt-key"
    assert key_volume["secret"]["items"] == [{"key": "key", "path": "key"}]
    assert len(only(manifests, "Secret", "jitgrant-receipt-key")["data"]["key"]) >= 64

    assert "emptyDir" in mounted["/var/lib/jitgrant/spool"][1]


@pytest.mark.parametrize("combination", ["default", "everything"])
def test_audit_config_is_what_the_operator_loads(chart: helm.Chart, combination: str) -> None:
    manifests = render(chart, COMBINATIONS[combination])
    text = only(manifests, "ConfigMap", "jitgrant-audit")["data"]["config.yaml"]
    config = AuditConfig.model_validate(yaml.safe_load(text))
    assert str(config.spool_dir) == "/var/lib/jitgrant/spool"
    assert "/var/lib/jitgrant/spool" in mounts(manifests)
    values = COMBINATIONS[combination].get("audit", {}).get("config", {"sinks": [{"type": "stdout"}]})
    assert [sink.type for sink in config.sinks] == [sink["type"] for sink in values["sinks"]]

    # A changed audit config restarts the pod (the file is read once, at start-up).
    checksum = only(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"][
        "checksum/audit-config"
    ]
    other = render(chart, {"audit": {"config": {"acceptance": "sinks", "sinks": [{"type": "stdout"}]}}})
    assert (
        only(other, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/audit-config"]
        != checksum
    )


def test_audit_secrets_and_spool_claim_are_mounted_by_reference(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["everything"])
    mounted = mounts(manifests)
    mount, volume = mounted["/etc/jitgrant/audit/secrets/siem"]
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "jitgrant-siem"
    assert mounted["/var/lib/jitgrant/spool"][1]["persistentVolumeClaim"] == {"claimName": "jitgrant-spool"}
    assert mounted["/etc/jitgrant/receipt"][1]["secret"]["secretName"] == "jitgrant-receipts"
    # No secret value is ever rendered inline: the only Secret objects are chart-generated keys.
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"] == []


def test_uninstall_hook_revokes_before_the_operator_goes(chart: helm.Chart) -> None:
    manifests = render(chart)
    job = only(manifests, "Job", "jitgrant-uninstall")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "revoke",
        "--all",
        "--reason",
        "uninstall",
        "--wait",
        "--wait-timeout",
        "300s",
    ]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "jitgrant-uninstall"
    hook_objects = [
        m for m in manifests if m["metadata"].get("annotations", {}).get("helm.sh/hook") == "pre-delete"
    ]
    # Its ServiceAccount and RBAC exist before the Job runs (lower weight), and are hooks themselves.
    weights = {(m["kind"], int(m["metadata"]["annotations"]["helm.sh/hook-weight"])) for m in hook_objects}
    assert weights == {("ServiceAccount", -10), ("ClusterRole", -10), ("ClusterRoleBinding", -10), ("Job", 0)}
    assert job["spec"]["activeDeadlineSeconds"] > 300


def test_a_post_delete_hook_removes_the_leases_the_operator_created(chart: helm.Chart) -> None:
    """Issue 23: `jitgrant-leader` (and the replay set's Leases) outlived `helm uninstall`: Helm does
    not know objects the operator creates. A post-delete Job deletes those names, in the release
    namespace only, with a Role that reaches nothing but Leases there."""
    manifests = render(chart)
    job = only(manifests, "Job", "jitgrant-cleanup")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-delete"
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert '"jitgrant-leader"' in script and '"jitgrant-replay-"' in script
    assert f"namespace = {NAMESPACE!r}".replace("'", '"') in script
    role = only(manifests, "Role", "jitgrant-cleanup")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["list", "delete"]}
    ]
    binding = only(manifests, "RoleBinding", "jitgrant-cleanup")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "jitgrant-cleanup", "namespace": NAMESPACE}
    ]
    # Off with the revoke hook (a cluster where no pod runs would wait for it).
    off = render(chart, {"uninstallRevoke": {"enabled": False}})
    assert not [m for m in off if m["metadata"]["name"] == "jitgrant-cleanup"]
