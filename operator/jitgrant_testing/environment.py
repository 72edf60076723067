"""An embedded cluster with the operator installed as the Helm chart would install it.

Shared by `jitgrant demo` and the integration tests, so the demo shows exactly what the tests check:
the operator runs as its own ServiceAccount with the chart's least-privilege RBAC, the admission
webhooks are registered with `failurePolicy: Fail`, agents and approvers authenticate with their own
tokens, and every call goes over HTTP through authentication, admission and RBAC.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from embedkube import EmbeddedCluster, User
from jitgrant.logs import quiet_refusals
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.crd import all_crds
from jitgrant.operator.runner import OperatorThread, build_runtime
from jitgrant.permissions import (
    GRANT_WRITE_PERMISSIONS,
    GRANTABLE_CLUSTER_ROLE_PERMISSIONS,
    GRANTS_NAMESPACE_PERMISSIONS,
    INLINE_RULES_PERMISSIONS,
    OPERATOR_NAMESPACE_PERMISSIONS,
    OPERATOR_PERMISSIONS,
    as_rbac_rules,
)
from jitgrant.reactor.runtime import Runtime
from jitgrant.settings import OperatorSettings, WebhookSettings
from jitgrant_testing.tls import generate_webhook_tls

OPERATOR_NAMESPACE = "jitgrant-system"
OPERATOR_SERVICE_ACCOUNT = "jitgrant"
OPERATOR_USERNAME = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
# The chart's default grantsNamespace: per-grant ServiceAccounts and kubeconfig Secrets live here.
GRANTS_NAMESPACE = "jitgrant-grants"


#: Where a wheel carries the repository files the demo and the playground apply (setup.py copies
#: them there); a checkout (an editable install) has none and reads the repository's own.
PACKAGED_DATA = Path(__file__).resolve().parent / "_data"
CHECKOUT = Path(__file__).resolve().parents[2]


def repository_file(packaged: str, in_checkout: str) -> Path:
    """A repository file the demo needs: the wheel's copy if this is an install, else the checkout's."""
    copy = PACKAGED_DATA / packaged
    return copy if copy.exists() else CHECKOUT / in_checkout


def _examples_dir() -> Path:
    """The repository's examples/: the demo applies the same manifests the README shows.

    `JITGRANT_EXAMPLES` (set by `jitgrant demo --examples PATH`) wins; otherwise the copy in the wheel,
    or the checkout this package runs from.
    """
    configured = os.environ.get("JITGRANT_EXAMPLES")
    if configured:
        return Path(configured)
    return repository_file("examples", "examples")


EXAMPLES = _examples_dir()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


T = TypeVar("T")


def wait_until(fn: Callable[[], T | None], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `fn` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def deployment_manifest(name: str) -> dict[str, Any]:
    """A minimal Deployment: what `kubectl rollout restart` acts on in the scenarios."""
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": f"registry.example/{name}:1.0"}]},
            },
        },
    }


#: Keep the fresh state directories instead of removing them (`jitgrant demo --keep`).
KEEP_STATE_DIRS = False

# Sentinel for "no state_dir given": a fresh temporary one is made (and removed by stop()).
FRESH_STATE_DIR = Path("<a fresh temporary directory>")


@dataclass
class Environment:
    """Start with `with Environment() as env:`; everything stops on exit."""

    grantable_cluster_roles: tuple[str, ...] = ("jit-restart-checkout",)
    inline_rules: bool = False
    sweep_interval: timedelta = timedelta(seconds=30)
    # Where the audit file, webhook key and kubeconfigs (with bearer tokens) go. Unset: a fresh
    # temporary directory, removed by stop() unless keep_state_dir; a directory passed in is kept.
    state_dir: Path = FRESH_STATE_DIR
    # `jitgrant demo --keep` sets KEEP_STATE_DIRS for every scenario's environment.
    keep_state_dir: bool = field(default_factory=lambda: KEEP_STATE_DIRS)
    # The playground's --metrics-port/--health-port, passed to the operator as `jitgrant run` does.
    metrics_port: int | None = None
    health_port: int | None = None
    namespaces: tuple[str, ...] = ("agents", "payments", "orders")
    audit_stdout: bool = False
    # An audit config file (the chart's format) instead of the default JSON-lines file + spool.
    audit_config: Path | None = None
    runtime_hook: Callable[[Runtime], None] | None = None
    # More OperatorSettings fields for the next operator start (tests/realapi/hydra: the key cache's).
    operator_settings: dict[str, Any] = field(default_factory=dict)
    # The CA of the API server's client certificate for webhooks: with it, the webhook server refuses
    # any TLS handshake without a certificate it signed (the chart's webhook.clientCA).
    webhook_client_ca: Path | None = None
    # Issue 31's one open request per requester and scope is on by default in the product. The suites
    # written before it file several requests for one scope from one agent (named apart, the scope
    # the same) to test other things, so policies applied through `apply` opt out unless they say
    # otherwise; tests of the guardrail (tests/realapi/test_guardrails.py) set oneOpenPerScope: true.
    one_open_per_scope: bool = False

    cluster: EmbeddedCluster = field(init=False)
    operator: OperatorThread = field(init=False)
    receipt_key: bytes = field(init=False, default=b"")
    _webhook: WebhookSettings = field(init=False)
    _clients: list[ApiClient] = field(init=False, default_factory=list)
    _admin: ApiClient | None = field(init=False, default=None)
    _owns_state_dir: bool = field(init=False, default=False)

    # -- set-up ---------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._owns_state_dir = self.state_dir == FRESH_STATE_DIR
        if self._owns_state_dir:
            self.state_dir = Path(tempfile.mkdtemp(prefix="jitgrant-env-"))

    def __enter__(self) -> Environment:
        try:
            self.start()
        except BaseException:
            self._remove_state_dir()
            raise
        return self

    def _remove_state_dir(self) -> None:
        if self._owns_state_dir and not self.keep_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        elif self._owns_state_dir:
            print(
                f"kept the state directory {self.state_dir} (kubeconfigs with tokens: remove it when done)",
                file=sys.stderr,
            )

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        quiet_refusals()  # as `jitgrant run` does: webhook refusals at INFO, not ERROR
        self.cluster = EmbeddedCluster(
            name="embedded",
            crd_manifests=list(all_crds().values()),
            audit_log=self.state_dir / "kube-apiserver-audit.log",  # read by `jitgrant activity`
        )
        self.cluster.start()
        core = CoreV1Api(self.admin)
        for namespace in (OPERATOR_NAMESPACE, GRANTS_NAMESPACE, *self.namespaces):
            core.create_namespace({"metadata": {"name": namespace}})
        self._install_operator_rbac()
        self._install_webhooks()
        self.receipt_key = secrets.token_bytes(32)
        self.operator = OperatorThread(self._runtime_factory)
        self.start_operator()

    def start_operator(self, *, timeout: float = 20.0) -> None:
        """Start (or restart) the operator and wait until its webhook server accepts connections:
        kopf reports ready before the server has bound its port."""
        self.operator.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self._webhook.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the webhook server did not listen on port {self._webhook.port}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        try:
            self.operator.stop()
        finally:
            # Each ApiClient holds a connection pool and a thread pool: close them, or their
            # sockets are left for the garbage collector to complain about.
            for client in self._clients:
                client.close()
            self._clients.clear()
            self._admin = None
            try:
                self.cluster.stop()
            finally:
                self._remove_state_dir()

    def _client(self, *, token: str | None = None) -> ApiClient:
        client = self.cluster.api_client(token=token)
        self._clients.append(client)
        return client

    @property
    def admin(self) -> ApiClient:
        if self._admin is None:
            self._admin = self._client()
        return self._admin

    @property
    def audit_file(self) -> Path:
        return self.state_dir / "audit.jsonl"

    def _install_operator_rbac(self) -> None:
        """What the chart installs, scope by scope (jitgrant.permissions): the operator's
        ServiceAccount, its cluster-wide ClusterRoles, and Roles in the grants namespace and in its
        own namespace. The embedded server has no ValidatingAdmissionPolicy: the chart's policy on
        the operator's RoleBinding writes is exercised on the real kube-apiserver (tests/realapi)."""
        core = CoreV1Api(self.admin)
        rbac = RbacAuthorizationV1Api(self.admin)
        core.create_namespaced_service_account(
            OPERATOR_NAMESPACE, {"metadata": {"name": OPERATOR_SERVICE_ACCOUNT}}
        )
        subjects = [
            {"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
        ]
        cluster_roles: dict[str, list[dict[str, Any]]] = {
            "jitgrant-operator": as_rbac_rules(OPERATOR_PERMISSIONS),
            "jitgrant-operator-bind": as_rbac_rules(
                GRANTABLE_CLUSTER_ROLE_PERMISSIONS, resource_names=tuple(self.grantable_cluster_roles)
            ),
            "jitgrant-operator-grant-writer": as_rbac_rules(
                GRANT_WRITE_PERMISSIONS + (INLINE_RULES_PERMISSIONS if self.inline_rules else ())
            ),
        }
        for name, rules in cluster_roles.items():
            rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
            rbac.create_cluster_role_binding(
                {
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": subjects,
                }
            )
        for namespace, permissions in (
            (GRANTS_NAMESPACE, GRANTS_NAMESPACE_PERMISSIONS),
            (OPERATOR_NAMESPACE, OPERATOR_NAMESPACE_PERMISSIONS),
        ):
            meta = {"name": "jitgrant-operator", "namespace": namespace}
            rbac.create_namespaced_role(namespace, {"metadata": meta, "rules": as_rbac_rules(permissions)})
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": meta,
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": meta["name"],
                    },
                    "subjects": subjects,
                },
            )

    def _install_webhooks(self) -> None:
        tls = generate_webhook_tls(self.state_dir / "webhook", hosts=["127.0.0.1", "localhost"])
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

        def webhook(
            name: str,
            *,
            resource: str,
            operations: list[str],
            side_effects: str = "None",
            scope: str = "Namespaced",
        ) -> dict[str, Any]:
            # The same entries as charts/jitgrant/templates/webhook.yaml, pointed at 127.0.0.1;
            # both are checked against what kopf itself would register for jitgrant's handlers.
            return {
                "name": f"{name}.jitgrant.dev",
                "clientConfig": {"url": f"https://127.0.0.1:{port}/{name}", "caBundle": ca_bundle},
                "rules": [
                    {
                        "apiGroups": [API_GROUP],
                        "apiVersions": [API_VERSION],
                        "operations": operations,
                        "resources": [resource],
                        "scope": scope,
                    }
                ],
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": side_effects,
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }

        from kubernetes.client import AdmissionregistrationV1Api

        admission = AdmissionregistrationV1Api(self.admin)
        admission.create_mutating_webhook_configuration(
            {
                "metadata": {"name": "jitgrant"},
                "webhooks": [
                    # CREATE stamps and seals; UPDATE records approve/deny with a receipt. It uses up
                    # OIDC tokens, except on dry runs: NoneOnDryRun.
                    webhook(
                        "stamp-requester",
                        resource="accessrequests",
                        operations=["CREATE", "UPDATE"],
                        side_effects="NoneOnDryRun",
                    )
                ],
            }
        )
        admission.create_validating_webhook_configuration(
            {
                "metadata": {"name": "jitgrant"},
                "webhooks": [
                    webhook("validate-request", resource="accessrequests", operations=["CREATE", "UPDATE"]),
                    # Only the operator writes status (RBAC should already keep everyone else out).
                    webhook("guard-status", resource="accessrequests/status", operations=["UPDATE"]),
                    # Records who deletes a request (it writes, except on dry runs: NoneOnDryRun).
                    webhook(
                        "record-deletion",
                        resource="accessrequests",
                        operations=["DELETE"],
                        side_effects="NoneOnDryRun",
                    ),
                    # A GrantPolicy the operator could not use is refused at apply time.
                    webhook(
                        "validate-policy",
                        resource="grantpolicies",
                        operations=["CREATE", "UPDATE"],
                        scope="Cluster",
                    ),
                ],
            }
        )

    def _operator_kubeconfig(self) -> dict[str, Any]:
        token = self.service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, seconds=24 * 3600)
        return self.cluster.kubeconfig(token=token)

    def _runtime_factory(self) -> Runtime:
        settings = OperatorSettings(
            operator_namespace=OPERATOR_NAMESPACE,
            grants_namespace=GRANTS_NAMESPACE,
            instance="jitgrant-embedded",
            inline_rules_enabled=self.inline_rules,
            receipt_key=self.receipt_key,
            sweep_interval=self.sweep_interval,
            audit_file=self.audit_file,
            audit_stdout=self.audit_stdout,
            audit_config=self.audit_config,
            webhook=self._webhook,
            operator_username=OPERATOR_USERNAME,
            metrics_port=self.metrics_port,
            health_port=self.health_port,
            **self.operator_settings,
        )
        runtime = build_runtime(settings, kubeconfig=self._operator_kubeconfig(), state_dir=self.state_dir)
        if self.runtime_hook is not None:
            self.runtime_hook(runtime)
        return runtime

    # -- identities -------------------------------------------------------------------------------
    def service_account_token(self, namespace: str, name: str, *, seconds: int = 3600) -> str:
        core = CoreV1Api(self.admin)
        try:
            core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        result = core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"expirationSeconds": seconds, "audiences": []}}
        )
        token: str = result.status.token
        return token

    def client_for_service_account(self, namespace: str, name: str) -> ApiClient:
        return self._client(token=self.service_account_token(namespace, name))

    def client_for_user(self, name: str, *, groups: tuple[str, ...] = ()) -> ApiClient:
        token = self.cluster.add_user(User(name=name, uid=f"uid-{name}", groups=groups))
        return self._client(token=token)

    def allow_to_request(
        self,
        namespace: str,
        *,
        service_account: str | None = None,
        user: str | None = None,
        group: str | None = None,
    ) -> None:
        """The RBAC a platform team gives agents: create and read AccessRequests in their namespace."""
        self.allow(
            namespace,
            role="jitgrant-requester",
            rules=[
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["accessrequests"],
                    "verbs": ["create", "get", "list", "watch"],
                }
            ],
            service_account=service_account,
            user=user,
            group=group,
        )

    def allow_to_approve(self, namespace: str, *, user: str | None = None, group: str | None = None) -> None:
        """Approvers annotate requests: patch (and read) AccessRequests."""
        self.allow(
            namespace,
            role="jitgrant-approver",
            rules=[
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["accessrequests"],
                    "verbs": ["get", "list", "watch", "patch"],
                }
            ],
            user=user,
            group=group,
        )

    def allow(
        self,
        namespace: str,
        *,
        role: str,
        rules: list[dict[str, Any]],
        service_account: str | None = None,
        user: str | None = None,
        group: str | None = None,
    ) -> None:
        rbac = RbacAuthorizationV1Api(self.admin)
        try:
            rbac.create_namespaced_role(namespace, {"metadata": {"name": role}, "rules": rules})
        except ApiException as exc:
            if exc.status != 409:
                raise
        subjects: list[dict[str, str]] = []
        if service_account:
            subjects.append({"kind": "ServiceAccount", "name": service_account, "namespace": namespace})
        if user:
            subjects.append({"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"})
        if group:
            subjects.append({"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"})
        suffix = (service_account or user or group or "x").replace(":", "-").lower()
        try:
            rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": f"{role}-{suffix}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                    "subjects": subjects,
                },
            )
        except ApiException as exc:
            # The same name binds the same subject to the same Role: another module of a session
            # sharing the installation (tests/realapi) allowed it already.
            if exc.status != 409:
                raise

    # -- objects ----------------------------------------------------------------------------------
    def _with_guardrail_default(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        spec = dict(manifest.get("spec") or {})
        limits = dict(spec.get("limits") or {})
        limits.setdefault("oneOpenPerScope", self.one_open_per_scope)
        return {**manifest, "spec": {**spec, "limits": limits}}

    def apply(self, manifests: Iterable[Mapping[str, Any]]) -> None:
        """Create cluster objects as the platform team (admin)."""
        from kubernetes.utils import create_from_dict

        custom = CustomObjectsApi(self.admin)
        for manifest in manifests:
            if manifest.get("apiVersion", "").startswith(API_GROUP):
                plural = {"GrantPolicy": "grantpolicies", "AccessRequest": "accessrequests"}[manifest["kind"]]
                if manifest["kind"] == "GrantPolicy":
                    manifest = self._with_guardrail_default(manifest)
                    custom.create_cluster_custom_object(API_GROUP, API_VERSION, plural, dict(manifest))
                else:
                    namespace = manifest["metadata"]["namespace"]
                    custom.create_namespaced_custom_object(
                        API_GROUP, API_VERSION, namespace, plural, dict(manifest)
                    )
            else:
                create_from_dict(self.admin, dict(manifest))

    def create_deployment(self, namespace: str, name: str) -> None:
        from kubernetes.client import AppsV1Api

        AppsV1Api(self.admin).create_namespaced_deployment(namespace, deployment_manifest(name))

    def get_request(self, namespace: str, name: str, *, client: ApiClient | None = None) -> dict[str, Any]:
        result: dict[str, Any] = CustomObjectsApi(client or self.admin).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, "accessrequests", name
        )
        return result

    def create_request(self, manifest: Mapping[str, Any], *, client: ApiClient) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        result: dict[str, Any] = CustomObjectsApi(client).create_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, "accessrequests", dict(manifest)
        )
        return result

    def annotate_request(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *, client: ApiClient
    ) -> dict[str, Any]:
        result: dict[str, Any] = CustomObjectsApi(client).patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            namespace,
            "accessrequests",
            name,
            {"metadata": {"annotations": dict(annotations)}},
        )
        return result

    def wait_for_phase(
        self, namespace: str, name: str, phase: str, *, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The request once it reaches `phase`; on time-out, the failure shows its status."""

        def reached() -> dict[str, Any] | None:
            obj = self.get_request(namespace, name)
            return obj if (obj.get("status") or {}).get("phase") == phase else None

        try:
            return wait_until(reached, timeout=timeout, what=f"{namespace}/{name} to become {phase}")
        except AssertionError:
            status = self.get_request(namespace, name).get("status")
            raise AssertionError(f"{namespace}/{name} did not become {phase}; status is {status}") from None

    def jit_bindings(self, namespace: str) -> list[dict[str, Any]]:
        """The RoleBindings jitgrant labelled in `namespace`."""
        return [
            b
            for b in self.role_bindings(namespace)
            if (b["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "jitgrant"
        ]

    def role_bindings(self, namespace: str) -> list[dict[str, Any]]:
        result = RbacAuthorizationV1Api(self.admin).list_namespaced_role_binding(namespace)
        items: list[dict[str, Any]] = self.admin.sanitize_for_serialization(result)["items"]
        return items

    def restart_deployment(self, namespace: str, name: str, *, client: ApiClient) -> None:
        """What `kubectl rollout restart` sends: a patch of the pod template's annotations."""
        from kubernetes.client import AppsV1Api

        AppsV1Api(client).patch_namespaced_deployment(
            name,
            namespace,
            {
                "spec": {
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}
                }
            },
        )
