"""Render the chart with the real Helm v4 SDK (helm-python-sdk), offline; test_helm_upgrade.py also
installs it with Helm on a real kube-apiserver (built once, after collection, as tests/realapi does)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import _native

from jitgrant_testing.controlplane import BuildUnavailable, ControlPlaneError, ensure_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "jitgrant"
RELEASE = "jitgrant"
NAMESPACE = "jitgrant-system"
ROLE_ARN = "arn:aws:iam::123456789012:role/jitgrant-operator"

Manifest = dict[str, Any]

# The value combinations every rendering test runs over.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "cert-manager-cluster-issuer": {
        "webhook": {
            "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}
        }
    },
    "generated-cert": {"webhook": {"certManager": {"enabled": False}}},
    "webhook-client-ca": {
        "webhook": {"clientCA": {"enabled": True, "configMap": "apiserver-webhook-client-ca"}}
    },
    "inline-rules": {"inlineRules": {"enabled": True}},
    "service-monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
            "egress": {"enabled": True},
        }
    },
    "eks-role": {"eks": {"roleArn": ROLE_ARN, "region": "eu-west-1"}},
    "no-grantable-roles": {
        "grantableClusterRoles": [],
        "exampleClusterRoles": {"enabled": False},
        "uninstallRevoke": {"enabled": False},
    },
    "crds-unmanaged": {"crds": {"enabled": False}},
    "escape-hatches": {
        "global": {"imageRegistry": "registry.corp.example:5000/mirror"},
        "crds": {"enabled": True, "keep": False},
        "commonLabels": {"team": "platform", "cost-center": "sec-42"},
        "logLevel": "debug",
        "logFormat": "json",
        "hostNetwork": True,
        "webhook": {"certManager": {"enabled": False}},
        "extraArgs": ["--sweep-interval", "60"],
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp.example:3128"}],
        "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
        "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/corp-ca", "readOnly": True}],
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jitgrant"}},
            }
        ],
        "serviceAccount": {"create": False, "name": "jitgrant-operator"},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Security"}},
    },
    "everything": {
        "image": {"digest": "sha256:" + "a" * 64},
        "eks": {"roleArn": ROLE_ARN, "region": "us-east-1"},
        "inlineRules": {"enabled": True},
        "webhook": {"certManager": {"enabled": True}},
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True, "egress": {"enabled": True}},
        "grantableClusterRoles": ["jit-restart-deployments", "jit-read-logs", "jit:scale-statefulsets"],
        "audit": {
            "config": {
                "acceptance": "sinks",
                "signingKeyPath": "/etc/jitgrant/audit/secrets/signing/key.pem",
                "sinks": [
                    {"type": "s3", "name": "s3-archive", "bucket": "audit-archive", "region": "eu-west-1"},
                    {
                        "type": "webhook",
                        "name": "siem",
                        "url": "https://siem.example.com/ingest",
                        "bearerTokenFile": "/etc/jitgrant/audit/secrets/siem/token",
                    },
                ],
            },
            "secretMounts": [
                {
                    "name": "siem",
                    "secretName": "jitgrant-siem",
                    "mountPath": "/etc/jitgrant/audit/secrets/siem",
                },
                {
                    "name": "signing",
                    "secretName": "jitgrant-signing",
                    "mountPath": "/etc/jitgrant/audit/secrets/signing",
                },
            ],
            "spool": {"existingClaim": "jitgrant-spool"},
        },
        "receiptKey": {"existingSecret": "jitgrant-receipts"},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
    },
}


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render_files(
    chart: helm.Chart, values: dict[str, Any] | None = None, *, api_versions: list[str] | None = None
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would produce it.

    `api_versions` plays the cluster's discovery (Capabilities.APIVersions, `helm template
    --api-versions`); the Python wrapper does not expose that option, so it goes to the native call.
    """
    if api_versions is None:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    options = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True, "api_versions": api_versions}
    rendered = _native.call_string("helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options))
    files: dict[str, str] = json.loads(rendered)
    return files


def manifests_of(files: dict[str, str]) -> list[Manifest]:
    return [
        document
        for path, text in sorted(files.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def render(
    chart: helm.Chart, values: dict[str, Any] | None = None, *, api_versions: list[str] | None = None
) -> list[Manifest]:
    return manifests_of(render_files(chart, values, api_versions=api_versions))


def notes(chart: helm.Chart, values: dict[str, Any] | None = None) -> str:
    files = render_files(chart, values)
    return next(text for path, text in files.items() if path.endswith("NOTES.txt"))


def only(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in found]}"
    )
    return found[0]


def kinds(manifests: list[Manifest]) -> list[tuple[str, str]]:
    return sorted((m["kind"], m["metadata"]["name"]) for m in manifests)


# --- the real kube-apiserver of test_helm_upgrade.py ------------------------------------------------
# Built (or reused from the cache) after collection, outside any test's timeout: the first build
# takes many minutes. Without a Go toolchain (and no JITGRANT_KUBE_BIN) those tests skip, saying why.
KUBE_BINARIES: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any(Path(item.path).name == "test_helm_upgrade.py" for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        try:
            KUBE_BINARIES["bin_dir"] = str(ensure_binaries(stream=True))
        except BuildUnavailable as err:
            KUBE_BINARIES["unavailable"] = f"tests/chart/test_helm_upgrade.py SKIPPED: {err}"
        except ControlPlaneError as err:
            KUBE_BINARIES["error"] = str(err)
