"""The operator installed on a REAL kube-apiserver (jitgrant_testing.controlplane) as the chart installs it.

`RealEnvironment` is `Environment` with the embedded cluster swapped for a running `ControlPlane`:

- the CRDs are the chart's own, as its templates render them (labels, helm.sh/resource-policy);
- the ServiceAccount, the grants namespace, ClusterRoles, Roles, their bindings, the
  ValidatingAdmissionPolicy on the operator's RoleBinding writes and the webhook configurations are
  the chart's templates rendered by the Helm SDK (helm-python-sdk, as tests/chart renders them), with each
  webhook's `clientConfig.service` replaced by a URL on 127.0.0.1 and the generated CA as caBundle;
- the operator runs in-process (OperatorThread) with a TokenRequest token of the chart's
  ServiceAccount, so every call it makes is authorised by the chart's RBAC on the real server;
- people are the control plane's static-token identities (admin, agent, approver, mallory).

The control plane is shared (a session fixture), so one RealEnvironment installs once and tests use
names of their own; `stop()` removes the webhook configurations and namespaces it made.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import (
    AdmissionregistrationV1Api,
    ApiClient,
    ApiextensionsV1Api,
    Configuration,
    CoreV1Api,
    RbacAuthorizationV1Api,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import create_from_dict

from jitgrant.operator.runner import OperatorThread
from jitgrant.settings import WebhookSettings
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import (
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    free_port,
    wait_until,
)
from jitgrant_testing.tls import generate_webhook_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "jitgrant"
RELEASE = "jitgrant"
# What the chart installs that a local operator needs; the Deployment, Services, Secrets, the audit
# ConfigMap and the uninstall hook belong to a pod in a cluster with nodes.
# Namespaces first: the chart's Roles in the grants namespace need it to exist.
INSTALLED_KINDS = (
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def render_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's manifests as `helm template` renders them (Helm v4 SDK, offline)."""
    import helm_python as helm

    with helm.Chart.load(CHART_DIR) as chart:
        files = chart.render(values or {}, name=RELEASE, namespace=OPERATOR_NAMESPACE, is_install=True)
    return [
        doc
        for path, text in sorted(files.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def chart_crds() -> list[dict[str, Any]]:
    return [m for m in render_chart() if m["kind"] == "CustomResourceDefinition"]


def _is_hook(manifest: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (manifest["metadata"].get("annotations") or {})


@dataclass
class RealEnvironment(Environment):
    """`with RealEnvironment(plane=control_plane) as env:` installs the chart and runs the operator."""

    plane: ControlPlane | None = None
    # Rendered chart values on top of the defaults (cert-manager off: we bring our own TLS).
    chart_values: dict[str, Any] = field(default_factory=dict)
    namespaces: tuple[str, ...] = ("agents", "payments")
    _rendered: list[dict[str, Any]] = field(init=False, default_factory=list)

    @property
    def control_plane(self) -> ControlPlane:
        if self.plane is None:
            raise ValueError("RealEnvironment needs plane=<a started ControlPlane>")
        return self.plane

    # -- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        core = CoreV1Api(self.admin)
        for namespace in (OPERATOR_NAMESPACE, *self.namespaces):
            core.create_namespace({"metadata": {"name": namespace}})
        self._install_crds()
        self._install_operator_rbac()
        self._install_webhooks()
        import secrets

        self.receipt_key = secrets.token_bytes(32)
        self.operator = OperatorThread(self._runtime_factory)
        self.start_operator(timeout=60.0)

    def stop(self) -> None:
        try:
            if hasattr(self, "operator"):
                self.operator.stop()
        finally:
            try:
                self._uninstall()
            finally:
                for client in self._clients:
                    client.close()
                self._clients.clear()
                self._admin = None
                self._remove_state_dir()

    def _uninstall(self) -> None:
        """Remove what would make the shared API server call a webhook that no longer listens."""
        admission = AdmissionregistrationV1Api(self.admin)
        for delete in (
            admission.delete_mutating_webhook_configuration,
            admission.delete_validating_webhook_configuration,
        ):
            try:
                delete(RELEASE)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def _client(self, *, token: str | None = None) -> ApiClient:
        plane = self.control_plane
        configuration = Configuration(host=plane.server)
        configuration.ssl_ca_cert = str(plane.ca_path)
        configuration.api_key = {"authorization": f"Bearer {token or plane.token('admin')}"}
        client = ApiClient(configuration)
        self._clients.append(client)
        return client

    def _chart_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "webhook": {"certManager": {"enabled": False}},
            "grantableClusterRoles": list(self.grantable_cluster_roles),
            "inlineRules": {"enabled": self.inline_rules},
        }
        values.update(self.chart_values)
        return values

    def _install_crds(self) -> None:
        api = ApiextensionsV1Api(self.admin)
        names = []
        for crd in chart_crds():
            api.create_custom_resource_definition(crd)
            names.append(crd["metadata"]["name"])

        def established() -> bool:
            for name in names:
                conditions = api.read_custom_resource_definition(name).status.conditions or []
                if not any(c.type == "Established" and c.status == "True" for c in conditions):
                    return False
            return True

        wait_until(established, timeout=30, what="the chart's CRDs to be Established")
        # Discovery of the new group lags Established by a moment on a real server.
        time.sleep(0.5)

    def _install_operator_rbac(self) -> None:
        """The chart's ServiceAccount, RBAC and admission policy, exactly as rendered."""
        self._rendered = render_chart(self._chart_values())
        for kind in INSTALLED_KINDS:
            for manifest in self._rendered:
                if manifest["kind"] == kind and not _is_hook(manifest):
                    create_from_dict(self.admin, manifest, namespace=OPERATOR_NAMESPACE)
        self._wait_for_admission_policy()

    @contextmanager
    def ca_bundle_secrets(self, *names: str) -> Iterator[None]:
        """While inside: the operator may read these Secrets of its namespace, as an operator grants it
        with the chart's `identity.caBundleSecrets` (the chart's own ca-bundles Role, rendered with
        those names and applied); removed on the way out so later tests see the default rights."""
        values = self._chart_values()
        values["identity"] = {**values.get("identity", {}), "caBundleSecrets": list(names)}
        extra = [
            m
            for m in render_chart(values)
            if m["kind"] in ("Role", "RoleBinding") and m["metadata"]["name"].endswith("-ca-bundles")
        ]
        assert len(extra) == 2, (
            f"the chart rendered {len(extra)} ca-bundles objects, expected a Role and a RoleBinding"
        )
        for manifest in extra:
            create_from_dict(self.admin, manifest, namespace=OPERATOR_NAMESPACE)
        try:
            yield
        finally:
            rbac = RbacAuthorizationV1Api(self.admin)
            for manifest in extra:
                delete = (
                    rbac.delete_namespaced_role
                    if manifest["kind"] == "Role"
                    else rbac.delete_namespaced_role_binding
                )
                try:
                    delete(manifest["metadata"]["name"], OPERATOR_NAMESPACE)
                except ApiException as exc:
                    if exc.status != 404:
                        raise

    def _wait_for_admission_policy(self) -> None:
        """The API server compiles a new ValidatingAdmissionPolicy and its binding asynchronously: wait
        until it refuses an unlabelled RoleBinding by the operator (a dry run), so no test runs before
        the policy is in force."""
        operator = self._client(
            token=self.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, seconds=600)
        )
        # A ClusterRole the operator may bind, so RBAC's escalation check (which comes before
        # admission) passes and the policy is what answers.
        bindable = self.grantable_cluster_roles[0]
        probe = {
            "metadata": {"name": "jitgrant-policy-probe", "namespace": self.namespaces[0]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": bindable},
            "subjects": [{"kind": "User", "name": "nobody", "apiGroup": "rbac.authorization.k8s.io"}],
        }

        def enforced() -> bool:
            try:
                RbacAuthorizationV1Api(operator).create_namespaced_role_binding(
                    self.namespaces[0], probe, dry_run="All"
                )
            except ApiException as exc:
                return exc.status in (403, 422) and "jitgrant admission policy" in str(exc.body)
            return False

        wait_until(enforced, timeout=30, what="the chart's ValidatingAdmissionPolicy to be enforced")

    def _install_webhooks(self) -> None:
        tls = generate_webhook_tls(self.state_dir / "webhook", hosts=["127.0.0.1"])
        port = free_port()
        self._webhook = WebhookSettings(
            host="127.0.0.1",
            port=port,
            certfile=tls.certfile,
            keyfile=tls.pkeyfile,
            public_host="127.0.0.1",
            client_ca_file=self.webhook_client_ca,
        )
        ca_bundle = base64.b64encode(tls.ca_pem).decode()
        admission = AdmissionregistrationV1Api(self.admin)
        for manifest in self._rendered:
            if manifest["kind"] not in WEBHOOK_KINDS:
                continue
            for hook in manifest["webhooks"]:
                path = hook["clientConfig"]["service"]["path"]
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
            if manifest["kind"] == "MutatingWebhookConfiguration":
                admission.create_mutating_webhook_configuration(manifest)
            else:
                admission.create_validating_webhook_configuration(manifest)

    def webhook_configurations(self) -> list[dict[str, Any]]:
        """The chart's webhook configurations as installed here (URL clientConfig)."""
        return [m for m in self._rendered if m["kind"] in WEBHOOK_KINDS]

    def _operator_kubeconfig(self) -> dict[str, Any]:
        plane = self.control_plane
        token = self.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, seconds=24 * 3600)
        ca_data = base64.b64encode(plane.ca_path.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "real", "cluster": {"server": plane.server, "certificate-authority-data": ca_data}}
            ],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "real", "context": {"cluster": "real", "user": "operator"}}],
            "current-context": "real",
        }

    # -- identities -------------------------------------------------------------------------------
    def client_for_user(self, name: str, *, groups: tuple[str, ...] = ()) -> ApiClient:
        """A static-token identity of the control plane; its groups are fixed by the token file."""
        plane = self.control_plane
        if name not in plane.users:
            raise ValueError(
                f"user {name!r} has no token on the real API server; use one of {sorted(plane.users)}"
            )
        if groups and set(groups) - set(plane.users[name]):
            raise ValueError(f"user {name!r} is in groups {plane.users[name]}, not {groups}")
        return self._client(token=plane.token(name))
