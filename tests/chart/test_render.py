"""The chart renders and lints with the real Helm v4 SDK, and every manifest is valid Kubernetes.

Kinds outside Kubernetes itself (cert-manager's Issuer and Certificate, the Prometheus
Operator's ServiceMonitor) have no schema in kubernetes-validate; they are checked against the
subset of their CRDs' schemas the chart uses (crd_subsets.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from .conftest import CHART_DIR, COMBINATIONS, NAMESPACE, kinds, notes, render
from .crd_subsets import SCHEMAS

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion: 1.30, the first with
# ValidatingAdmissionPolicy GA) and the newest known here.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_manifest_validates_against_kubernetes_schemas(chart: helm.Chart, combination: str) -> None:
    manifests = render(chart, COMBINATIONS[combination])
    assert manifests
    for manifest in manifests:
        api_kind = (manifest["apiVersion"], manifest["kind"])
        if api_kind in SCHEMAS:
            jsonschema.validate(manifest, SCHEMAS[api_kind])
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_lint_is_clean(combination: str) -> None:
    report = helm.lint(CHART_DIR, COMBINATIONS[combination], strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_reports_a_broken_chart(tmp_path: Path) -> None:
    """The lint check above can fail: a template error is reported."""
    broken = tmp_path / "jitgrant"
    shutil.copytree(CHART_DIR, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\nmetadata: {{ .Values.nope.nope }}\n")
    report = helm.lint(broken, None, strict=True, namespace=NAMESPACE)
    assert report["errors"] or [m for m in report["messages"] if m["severity"] >= 2]


def test_default_install_objects(chart: helm.Chart) -> None:
    assert kinds(render(chart)) == [
        ("ClusterRole", "jit-read-logs"),
        ("ClusterRole", "jit-restart-deployments"),
        ("ClusterRole", "jitgrant"),
        ("ClusterRole", "jitgrant-approver"),
        ("ClusterRole", "jitgrant-grant-writer"),
        ("ClusterRole", "jitgrant-policy-reader"),
        ("ClusterRole", "jitgrant-requester"),
        ("ClusterRole", "jitgrant-uninstall"),
        ("ClusterRoleBinding", "jitgrant"),
        ("ClusterRoleBinding", "jitgrant-grant-writer"),
        ("ClusterRoleBinding", "jitgrant-uninstall"),
        ("ConfigMap", "jitgrant-audit"),
        ("CustomResourceDefinition", "accessrequests.jitgrant.dev"),
        ("CustomResourceDefinition", "grantpolicies.jitgrant.dev"),
        ("Deployment", "jitgrant"),
        ("Job", "jitgrant-cleanup"),
        ("Job", "jitgrant-uninstall"),
        ("MutatingWebhookConfiguration", "jitgrant"),
        ("Namespace", "jitgrant-grants"),
        ("NetworkPolicy", "jitgrant"),
        ("PodDisruptionBudget", "jitgrant"),
        ("Role", "jitgrant"),
        ("Role", "jitgrant"),
        ("Role", "jitgrant-cleanup"),
        ("RoleBinding", "jitgrant"),
        ("RoleBinding", "jitgrant"),
        ("RoleBinding", "jitgrant-cleanup"),
        ("Secret", "jitgrant-receipt-key"),
        ("Secret", "jitgrant-webhook-tls"),
        ("Service", "jitgrant-metrics"),
        ("Service", "jitgrant-webhook"),
        ("ServiceAccount", "jitgrant"),
        ("ServiceAccount", "jitgrant-cleanup"),
        ("ServiceAccount", "jitgrant-uninstall"),
        ("ValidatingAdmissionPolicy", "jitgrant-operator-writes"),
        ("ValidatingAdmissionPolicyBinding", "jitgrant-operator-writes"),
        ("ValidatingWebhookConfiguration", "jitgrant"),
    ]


def test_optional_objects_follow_their_values(chart: helm.Chart) -> None:
    default = set(kinds(render(chart)))
    assert ("ServiceMonitor", "jitgrant") not in default
    assert ("NetworkPolicy", "jitgrant") in default  # on by default (install.md, "NetworkPolicy")
    assert ("NetworkPolicy", "jitgrant") not in kinds(render(chart, {"networkPolicy": {"enabled": False}}))
    assert ("ServiceMonitor", "jitgrant") in kinds(render(chart, COMBINATIONS["service-monitor"]))
    assert ("NetworkPolicy", "jitgrant") in kinds(render(chart, COMBINATIONS["network-policy"]))

    minimal = set(kinds(render(chart, COMBINATIONS["no-grantable-roles"])))
    assert minimal == default - {
        ("ClusterRole", "jit-read-logs"),
        ("ClusterRole", "jit-restart-deployments"),
        ("ClusterRole", "jitgrant-uninstall"),
        ("ClusterRoleBinding", "jitgrant-uninstall"),
        ("Job", "jitgrant-uninstall"),
        ("ServiceAccount", "jitgrant-uninstall"),
        ("Job", "jitgrant-cleanup"),
        ("Role", "jitgrant-cleanup"),
        ("RoleBinding", "jitgrant-cleanup"),
        ("ServiceAccount", "jitgrant-cleanup"),
    }

    everything = set(kinds(render(chart, COMBINATIONS["everything"])))
    assert ("Secret", "jitgrant-receipt-key") not in everything  # an existing Secret is named instead
    assert ("Secret", "jitgrant-webhook-tls") not in everything  # cert-manager writes it


def test_service_monitor_scrapes_the_metrics_service(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["service-monitor"])
    monitor = next(m for m in manifests if m["kind"] == "ServiceMonitor")
    service = next(
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "jitgrant-metrics"
    )
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    webhook = next(
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "jitgrant-webhook"
    )
    assert not selector.items() <= webhook["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_network_policy_opens_only_the_operator_ports(chart: helm.Chart) -> None:
    manifests = render(chart, COMBINATIONS["network-policy"])
    policy = next(m for m in manifests if m["kind"] == "NetworkPolicy")
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    ingress_ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ingress_ports == container_ports == {"webhook", "metrics", "health"}
    metrics_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "metrics")
    assert metrics_rule["from"] == COMBINATIONS["network-policy"]["networkPolicy"]["metricsFrom"]
    egress_ports = sorted(
        {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    )
    assert egress_ports == [(53, "TCP"), (53, "UDP"), (443, "TCP"), (6443, "TCP")]


def test_no_chart_object_looks_like_an_operator_grant(chart: helm.Chart) -> None:
    """The operator's sweep deletes what it labelled; the chart's own objects must never match."""
    for combination in ("default", "everything"):
        for manifest in render(chart, COMBINATIONS[combination]):
            labels = manifest["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/managed-by") == "Helm", manifest["metadata"]["name"]
            assert "jitgrant.dev/request-uid" not in labels


def test_notes_tell_the_installer_what_to_do_next(chart: helm.Chart) -> None:
    text = notes(chart)
    assert "kubectl -n jitgrant-system rollout status deployment/jitgrant" in text
    assert "- jit-restart-deployments" in text and "- jit-read-logs" in text
    assert "GrantPolicy" in text
    assert "audit spool is an emptyDir" in text
    assert "eks.roleArn is not set" in text
    assert "inline-rules mode is ON" not in text

    everything = notes(chart, COMBINATIONS["everything"])
    assert "WARNING: inline-rules mode is ON" in everything
    assert "escalate" in everything
    assert COMBINATIONS["everything"]["eks"]["roleArn"] in everything
    assert "emptyDir" not in everything
    assert "- jit:scale-statefulsets" in everything
