"""`ClusterApi`: the cluster port implemented with the official Kubernetes client.

Used for the operator's own cluster (AccessRequests, GrantPolicies, kubeconfig Secrets) and, built
from a `ClusterConnection`, for each target cluster. Every blocking call runs in a thread so kopf's
event loop never stalls, and every failure leaves here as a member of the `clusters.errors` family.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import kubernetes
import urllib3.exceptions
from kubernetes.client import (
    ApiClient,
    AuthorizationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
    V1DeleteOptions,
    V1Preconditions,
)
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.errors import (
    ClusterAccessError,
    Conflict,
    Forbidden,
    NotFound,
    classify_kubernetes_error,
)
from jitgrant.clusters.gate import ClusterGate
from jitgrant.clusters.port import AccessSubject, ClusterObject, ClusterRoleRead, StoredPolicy, StoredRequest
from jitgrant.models import API_GROUP, API_VERSION


def api_client_from(kubeconfig: Mapping[str, Any] | str | None) -> ApiClient:
    """A client from a kubeconfig dict, a kubeconfig path, or (None) the in-cluster config."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    elif isinstance(kubeconfig, str):
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        kubernetes.config.load_kube_config_from_dict(dict(kubeconfig), client_configuration=configuration)
    # As many kept connections as the runner has threads for API calls (the default, cpu * 5, made
    # every call beyond 10 at once open and drop a TLS connection of its own).
    configuration.connection_pool_maxsize = CONNECTIONS
    return ApiClient(configuration)


# Connections a cluster client keeps open (jitgrant.operator.runner.API_THREADS calls can be in flight).
CONNECTIONS = 24

# Items per page of a LIST: large enough that 10,000 objects take a handful of calls.
LIST_PAGE = 500


class _Methods(NamedTuple):
    create: Any
    read: Any
    delete: Any
    list_all: Any
    list_namespaced: Any


# (connect, read) seconds for the policy checks' calls on a port without timeouts of its own.
CHECK_TIMEOUT = (5.0, 20.0)


@dataclass
class ClusterApi:
    """Blocking calls of the official client, run in a thread so kopf's event loop never stalls."""

    name: str
    client: ApiClient
    # Where the client points, for kubeconfigs handed to agents (None: read from the client).
    connection: Any = None
    # (connect, read) seconds for every call; None waits forever, as the official client does.
    # Target clusters get one, so an API server that accepts connections but never answers holds
    # one request's reconcile for seconds, not for good (and cannot keep the operator from stopping).
    request_timeout: tuple[float, float] | None = None

    @property
    def server(self) -> str:
        host: str = self.client.configuration.host
        return host

    @property
    def ca_pem(self) -> bytes | None:
        if self.connection is not None:
            ca: bytes | None = self.connection.ca_pem
            return ca
        path = self.client.configuration.ssl_ca_cert
        if not path:
            return None
        with open(path, "rb") as handle:
            return handle.read()

    @property
    def gate(self) -> ClusterGate | None:
        """The target cluster's threads, budget and breaker (None: the operator's own cluster)."""
        gate: ClusterGate | None = getattr(self.connection, "gate", None)
        return gate

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """The one funnel to the client: the library's errors leave as the `clusters.errors` family.

        A target cluster's calls run on its own threads, within its budget, and fail fast while its
        circuit is open (clusters/gate.py); the own cluster's run on the operator's pool."""
        if self.request_timeout is not None:
            kwargs.setdefault("_request_timeout", self.request_timeout)
        gate = self.gate
        try:
            if gate is not None:
                return await gate.call(fn, *args, **kwargs)
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClusterAccessError:
            raise  # already classified (an EKS token refresh inside the call)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise classify_kubernetes_error(exc, cluster=self.name) from exc

    @property
    def rbac(self) -> RbacAuthorizationV1Api:
        return RbacAuthorizationV1Api(self.client)

    @property
    def custom(self) -> CustomObjectsApi:
        return CustomObjectsApi(self.client)

    def close(self) -> None:
        self.client.close()

    # --- AccessRequests and GrantPolicies ---------------------------------------------------------

    async def get_request(self, namespace: str, name: str) -> StoredRequest | None:
        try:
            body = await self.call(
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                "accessrequests",
                name,
            )
        except NotFound:
            return None
        return StoredRequest(body)

    async def list_requests(self) -> list[StoredRequest]:
        items = await self._list_pages(
            self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, "accessrequests"
        )
        return [StoredRequest(item) for item in items]

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> StoredRequest:
        """Merge-patch the status; the resourceVersion precondition makes a stale writer lose."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        result = await self.call(
            self.custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            "accessrequests",
            name,
            body,
        )
        return StoredRequest(result)

    async def update_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str | None
    ) -> StoredRequest:
        meta: dict[str, Any] = {"finalizers": list(finalizers)}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        result = await self.call(
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            "accessrequests",
            name,
            {"metadata": meta},
        )
        return StoredRequest(result)

    async def annotate_request(
        self, namespace: str, name: str, annotations: Mapping[str, str], *, uid: str
    ) -> StoredRequest:
        """Merge-patch annotations onto the request with this uid (the API server refuses a patch that
        changes metadata.uid, so a request recreated under the name is never written)."""
        result = await self.call(
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            "accessrequests",
            name,
            {"metadata": {"uid": uid, "annotations": dict(annotations)}},
        )
        return StoredRequest(result)

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid))
        try:
            await self.call(
                self.custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                "accessrequests",
                name,
                body=options,
            )
        except (NotFound, Conflict):
            return False  # gone already, or another request holds the name now
        return True

    async def get_policy(self, name: str) -> StoredPolicy | None:
        try:
            body = await self.call(
                self.custom.get_cluster_custom_object, API_GROUP, API_VERSION, "grantpolicies", name
            )
        except NotFound:
            return None
        return StoredPolicy(name=name, spec=body.get("spec") or {})

    async def list_policies(self) -> list[StoredPolicy]:
        result = await self.call(
            self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, "grantpolicies"
        )
        return [
            StoredPolicy(name=(item.get("metadata") or {}).get("name", ""), spec=item.get("spec") or {})
            for item in result.get("items", [])
        ]

    # --- The objects of a grant -------------------------------------------------------------------

    # --- The GrantPolicy's own object and status (the Ready condition) ------------------------------

    @property
    def _check_timeout(self) -> tuple[float, float]:
        # A target's own (short) timeouts hold the grant-time ClusterRole check as they hold the grant.
        return self.request_timeout or CHECK_TIMEOUT

    async def read_policy_object(self, name: str) -> Mapping[str, Any] | None:
        try:
            body: Mapping[str, Any] = await self.call(
                self.custom.get_cluster_custom_object,
                API_GROUP,
                API_VERSION,
                "grantpolicies",
                name,
                _request_timeout=self._check_timeout,
            )
        except NotFound:
            return None
        return body

    async def list_policy_objects(self) -> list[Mapping[str, Any]]:
        result = await self.call(
            self.custom.list_cluster_custom_object,
            API_GROUP,
            API_VERSION,
            "grantpolicies",
            _request_timeout=self._check_timeout,
        )
        items: list[Mapping[str, Any]] = result.get("items", [])
        return items

    async def read_namespace_labels(self, name: str) -> dict[str, str] | None:
        try:
            namespace = await self.call(
                CoreV1Api(self.client).read_namespace, name, _request_timeout=self._check_timeout
            )
        except (NotFound, Forbidden):
            return None
        return dict(namespace.metadata.labels or {})

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        await self.call(
            self.custom.patch_cluster_custom_object_status,
            API_GROUP,
            API_VERSION,
            "grantpolicies",
            name,
            {"status": dict(status)},
            _request_timeout=self._check_timeout,
        )

    # --- Access reviews and ClusterRoles ------------------------------------------------------------

    async def subject_may(
        self, subject: AccessSubject, *, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> bool:
        """A SubjectAccessReview (the operator needs `create subjectaccessreviews`, permissions.py)."""
        spec: dict[str, Any] = {
            "user": subject.username,
            "groups": list(subject.groups),
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": resource,
                "namespace": namespace,
                "name": name,
            },
        }
        if subject.uid:
            spec["uid"] = subject.uid
        if subject.extra:
            spec["extra"] = {key: list(values) for key, values in subject.extra.items()}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        result = await self.call(AuthorizationV1Api(self.client).create_subject_access_review, review)
        return bool(result.status.allowed) and not bool(result.status.denied)

    async def read_cluster_role(self, name: str) -> ClusterRoleRead:
        try:
            role = await self.call(self.rbac.read_cluster_role, name, _request_timeout=self._check_timeout)
        except NotFound:
            return ClusterRoleRead(found=False)
        except Forbidden:
            return ClusterRoleRead(found=None)
        body: Mapping[str, Any] = self.client.sanitize_for_serialization(role)
        return ClusterRoleRead(found=True, body=body)

    async def may_bind(self, cluster_role: str) -> bool | None:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": "rbac.authorization.k8s.io",
                    "resource": "clusterroles",
                    "verb": "bind",
                    "name": cluster_role,
                }
            },
        }
        result = await self.call(
            AuthorizationV1Api(self.client).create_self_subject_access_review,
            review,
            _request_timeout=self._check_timeout,
        )
        return bool(result.status.allowed)

    # --- Grant objects ------------------------------------------------------------------------------

    def _methods(self, kind: str) -> _Methods:
        """The official client's calls for one kind of namespaced object a grant is made of."""
        rbac, core = self.rbac, CoreV1Api(self.client)
        table = {
            "RoleBinding": _Methods(
                rbac.create_namespaced_role_binding,
                rbac.read_namespaced_role_binding,
                rbac.delete_namespaced_role_binding,
                rbac.list_role_binding_for_all_namespaces,
                rbac.list_namespaced_role_binding,
            ),
            "Role": _Methods(
                rbac.create_namespaced_role,
                rbac.read_namespaced_role,
                rbac.delete_namespaced_role,
                rbac.list_role_for_all_namespaces,
                rbac.list_namespaced_role,
            ),
            "ServiceAccount": _Methods(
                core.create_namespaced_service_account,
                core.read_namespaced_service_account,
                core.delete_namespaced_service_account,
                core.list_service_account_for_all_namespaces,
                core.list_namespaced_service_account,
            ),
            "Secret": _Methods(
                core.create_namespaced_secret,
                core.read_namespaced_secret,
                core.delete_namespaced_secret,
                core.list_secret_for_all_namespaces,
                core.list_namespaced_secret,
            ),
        }
        return table[kind]

    def _object(self, kind: str, raw: Any) -> ClusterObject:
        meta = self.client.sanitize_for_serialization(raw).get("metadata") or {}
        return ClusterObject(
            kind=kind,
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
        )

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        kind = str(body["kind"])
        result = await self.call(self._methods(kind).create, body["metadata"]["namespace"], dict(body))
        return self._object(kind, result)

    async def read_object(self, kind: str, namespace: str, name: str) -> ClusterObject | None:
        try:
            result = await self.call(self._methods(kind).read, name, namespace)
        except NotFound:
            return None
        return self._object(kind, result)

    async def delete_object(self, kind: str, namespace: str, name: str, *, uid: str) -> bool:
        options = V1DeleteOptions(preconditions=V1Preconditions(uid=uid))
        try:
            await self.call(self._methods(kind).delete, name, namespace, body=options)
        except (NotFound, Conflict):
            return False  # gone already, or another object holds the name now: not ours to delete
        return True

    async def _list_pages(self, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a LIST, fetched LIST_PAGE at a time (`limit`/`continue`), so thousands of
        objects never make one huge response on either side."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = {"limit": LIST_PAGE, **({"_continue": token} if token else {})}
            result = await self.call(fn, *args, **kwargs, **page)
            body = result if isinstance(result, dict) else self.client.sanitize_for_serialization(result)
            items.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def list_labelled(
        self, kinds: Sequence[str], *, selector: str, namespace: str | None = None
    ) -> list[ClusterObject]:
        found: list[ClusterObject] = []
        for kind in kinds:
            methods = self._methods(kind)
            items = await (
                self._list_pages(methods.list_all, label_selector=selector)
                if namespace is None
                else self._list_pages(methods.list_namespaced, namespace, label_selector=selector)
            )
            found.extend(self._object(kind, item) for item in items)
        return found

    async def mint_token(self, *, namespace: str, service_account: str, seconds: int) -> str:
        """A TokenRequest for a ServiceAccount; deleting the account invalidates it early."""
        result = await self.call(
            CoreV1Api(self.client).create_namespaced_service_account_token,
            service_account,
            namespace,
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        token: str = result.status.token
        return token
