"""The CRD upgrade path with Helm itself (the Helm v4 SDK) on a real kube-apiserver.

The previous chart version (0.1.0, the first chart, vendored in previous-chart/) shipped its CRDs in
crds/: Helm created them on install, without ownership metadata, and never touched them again. This
chart renders them as templates, so the first `helm upgrade` finds CRDs it does not own and refuses;
after the one-time adoption docs/install.md gives (label and annotate, or `--take-ownership`), the
upgrade replaces them with the current ones and the requests stored under the old schema stay
readable. Then what `crds.enabled` and `crds.keep` do to a live cluster: kept on uninstall and when
the chart stops managing them, deleted on uninstall only with keep off.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from helm_python import _native
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiextensionsV1Api,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
)
from kubernetes.client.exceptions import ApiException

from jitgrant.models.vocabulary import FINALIZER
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import wait_until

from .conftest import CHART_DIR, KUBE_BINARIES, NAMESPACE, RELEASE, ROOT

# The first chart (3e3e443, chart 0.1.0): CRDs in crds/, as tests/chart/previous-crds/ holds them.
PREVIOUS_CHART = Path(__file__).parent / "previous-chart" / "jitgrant-0.1.0.tgz"
GROUP, VERSION = "jitgrant.dev", "v1alpha1"
CRDS = ["accessrequests.jitgrant.dev", "grantpolicies.jitgrant.dev"]
# No operator runs here (the Deployment has no nodes to run on) and no cert-manager is installed.
VALUES: dict[str, Any] = {
    "webhook": {"certManager": {"enabled": False}},
    "uninstallRevoke": {"enabled": False},
}
# The one-time adoption, as docs/install.md gives it (kubectl label / kubectl annotate).
ADOPT_LABEL = ["label", "crd", *CRDS, "app.kubernetes.io/managed-by=Helm"]
ADOPT_ANNOTATE = [
    "annotate",
    "crd",
    *CRDS,
    f"meta.helm.sh/release-name={RELEASE}",
    f"meta.helm.sh/release-namespace={NAMESPACE}",
]

POLICY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "GrantPolicy",
    "metadata": {"name": "oncall-restart"},
    "spec": {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
    },
}
REQUEST: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "AccessRequest",
    "metadata": {"name": "restart-checkout", "namespace": "agents"},
    "spec": {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "10m",
        "justification": "INC-7 stuck pods",
    },
}


@dataclass
class Cluster:
    plane: ControlPlane
    admin: ApiClient
    helm: helm.Config

    def kubectl(self, *args: str) -> str:
        argv = [str(self.plane.binary("kubectl")), "--kubeconfig", str(self.plane.kubeconfig_path()), *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def crd(self, name: str) -> dict[str, Any] | None:
        try:
            response = ApiextensionsV1Api(self.admin).read_custom_resource_definition(
                name, _preload_content=False
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        served: dict[str, Any] = json.loads(response.data)
        return served

    def install(self, chart: Path, values: dict[str, Any]) -> dict[str, Any]:
        return self.helm.install(
            str(chart), RELEASE, values, namespace=NAMESPACE, create_namespace=True, timeout=60
        )

    def upgrade(self, values: dict[str, Any], *, take_ownership: bool = False) -> dict[str, Any]:
        if not take_ownership:
            return self.helm.upgrade(str(CHART_DIR), RELEASE, values, namespace=NAMESPACE, timeout=60)
        # `helm upgrade --take-ownership` (Helm 3.17+); the Python wrapper does not expose the option.
        options = {"namespace": NAMESPACE, "timeout_seconds": 60, "take_ownership": True}
        payload = _native.call_string(
            "helm_upgrade",
            self.helm._raw(),
            _native.HANDLE(0),
            _native.HANDLE(0),
            str(CHART_DIR),
            RELEASE,
            json.dumps(values),
            json.dumps(options),
        )
        release: dict[str, Any] = json.loads(payload)
        return release


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if "unavailable" in KUBE_BINARIES:
        pytest.skip(KUBE_BINARIES["unavailable"])
    if "error" in KUBE_BINARIES:
        pytest.fail(f"could not build the control plane: {KUBE_BINARIES['error']}")
    with ControlPlane(KUBE_BINARIES["bin_dir"], controller_manager=False) as plane:
        configuration = Configuration()
        configuration.host = plane.server
        configuration.ssl_ca_cert = str(plane.ca_path)
        configuration.api_key = {"authorization": f"Bearer {plane.token('admin')}"}
        admin = ApiClient(configuration)
        try:
            with helm.Config(kubeconfig_path=plane.kubeconfig_path(), namespace=NAMESPACE) as config:
                yield Cluster(plane, admin, config)
        finally:
            admin.close()


@pytest.fixture(scope="module")
def previous_chart() -> Iterator[Path]:
    # Vendored (`git archive 3e3e443:charts/jitgrant`): CI may clone without history.
    with tempfile.TemporaryDirectory(prefix="jitgrant-previous-chart-") as directory:
        with tarfile.open(PREVIOUS_CHART) as archive:
            archive.extractall(directory, filter="data")
        chart = Path(directory)
        assert (chart / "crds").is_dir() and not (chart / "templates" / "crds.yaml").exists()
        yield chart


def generated_versions(name: str) -> list[dict[str, Any]]:
    plural = name.split(".")[0]
    manifest = yaml.safe_load((ROOT / "crds" / f"jitgrant.dev_{plural}.yaml").read_text())
    versions: list[dict[str, Any]] = manifest["spec"]["versions"]
    return versions


def read_request(custom: CustomObjectsApi) -> dict[str, Any]:
    request: dict[str, Any] = custom.get_namespaced_custom_object(
        GROUP, VERSION, "agents", "accessrequests", "restart-checkout"
    )
    return request


@pytest.mark.parametrize("adoption", ["label-and-annotate", "take-ownership"])
def test_upgrade_from_the_previous_chart_keeps_requests_readable(
    cluster: Cluster, previous_chart: Path, adoption: str
) -> None:
    cluster.install(previous_chart, VALUES)
    for name in CRDS:
        old = cluster.crd(name)
        assert old is not None and "labels" not in old["metadata"]  # crds/: Helm does not own them
    # The webhooks answer from the operator, which does not run here (failurePolicy: Fail).
    admission = AdmissionregistrationV1Api(cluster.admin)
    admission.delete_mutating_webhook_configuration(RELEASE)
    admission.delete_validating_webhook_configuration(RELEASE)
    custom = CustomObjectsApi(cluster.admin)
    CoreV1Api(cluster.admin).create_namespace({"metadata": {"name": "agents"}})
    custom.create_cluster_custom_object(GROUP, VERSION, "grantpolicies", POLICY)
    custom.create_namespaced_custom_object(GROUP, VERSION, "agents", "accessrequests", REQUEST)
    before = read_request(custom)

    # Without the adoption, Helm refuses to take over CRDs it did not create, and says so.
    with pytest.raises(helm.HelmReleaseError) as refused:
        cluster.upgrade(VALUES)
    assert 'CustomResourceDefinition "accessrequests.jitgrant.dev"' in str(refused.value)
    assert "invalid ownership metadata" in str(refused.value)

    if adoption == "label-and-annotate":
        cluster.kubectl(*ADOPT_LABEL)
        cluster.kubectl(*ADOPT_ANNOTATE)
        release = cluster.upgrade(VALUES)
    else:
        release = cluster.upgrade(VALUES, take_ownership=True)
    assert (release["status"], release["chart_version"]) == ("deployed", "0.2.0")

    for name in CRDS:
        served = cluster.crd(name)
        assert served is not None
        assert served["spec"]["versions"] == generated_versions(name)  # the current schema serves
        assert served["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert served["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert served["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert served["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == NAMESPACE

    after = read_request(custom)
    assert after["metadata"]["uid"] == before["metadata"]["uid"] and after["spec"] == before["spec"]
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "agents", "accessrequests")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["restart-checkout"]
    policy = custom.get_cluster_custom_object(GROUP, VERSION, "grantpolicies", "oncall-restart")
    assert {key: policy["spec"][key] for key in POLICY["spec"]} == POLICY["spec"]

    # Uninstall keeps the CRDs, and with them the record of who asked for access.
    cluster.helm.uninstall(RELEASE, timeout=60)
    assert all(cluster.crd(name) is not None for name in CRDS)
    assert read_request(custom)


def test_crds_enabled_and_keep_on_a_live_cluster(cluster: Cluster) -> None:
    def present() -> list[str]:
        return [name for name in CRDS if cluster.crd(name) is not None]

    # crds.enabled=false: the chart installs no CRD (they are yours to apply).
    release = cluster.install(CHART_DIR, VALUES | {"crds": {"enabled": False}})
    assert "CustomResourceDefinition" not in release["manifest"]
    assert present() == []

    # Turned on by an upgrade: created, kept.
    cluster.upgrade(VALUES)
    assert present() == CRDS
    annotations = [(cluster.crd(name) or {})["metadata"]["annotations"] for name in CRDS]
    assert all(a["helm.sh/resource-policy"] == "keep" for a in annotations)

    # Turned off again while kept: Helm leaves them in place instead of deleting them.
    cluster.upgrade(VALUES | {"crds": {"enabled": False}})
    assert present() == CRDS

    # keep=false takes the annotation away; then uninstall deletes the CRDs (and every request).
    cluster.upgrade(VALUES | {"crds": {"keep": False}})
    assert all(
        "helm.sh/resource-policy" not in (cluster.crd(n) or {})["metadata"]["annotations"] for n in CRDS
    )
    # A request still holding the operator's finalizer (as every request does) holds its CRD in
    # Terminating after the uninstall, until the finalizer is removed by hand.
    admission = AdmissionregistrationV1Api(cluster.admin)
    admission.delete_mutating_webhook_configuration(RELEASE)
    admission.delete_validating_webhook_configuration(RELEASE)
    CoreV1Api(cluster.admin).create_namespace({"metadata": {"name": "agents"}})
    custom = CustomObjectsApi(cluster.admin)
    held = {**REQUEST, "metadata": {**REQUEST["metadata"], "finalizers": [FINALIZER]}}
    custom.create_namespaced_custom_object(GROUP, VERSION, "agents", "accessrequests", held)
    cluster.helm.uninstall(RELEASE, timeout=60)
    wait_until(lambda: present() == ["accessrequests.jitgrant.dev"], timeout=30, what="grantpolicies deleted")
    terminating = cluster.crd("accessrequests.jitgrant.dev") or {}
    assert terminating["metadata"].get("deletionTimestamp")
    assert read_request(custom)["metadata"].get("deletionTimestamp")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "agents", "accessrequests", "restart-checkout", {"metadata": {"finalizers": None}}
    )
    wait_until(lambda: present() == [], timeout=30, what="the CRDs to be deleted")
