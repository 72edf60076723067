"""The operator's own cluster: where AccessRequests and GrantPolicies live, reached with the
operator's own credentials (in-cluster ServiceAccount, a kubeconfig file, or a kubeconfig dict)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes
from kubernetes.client import ApiClient, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.models import API_GROUP, API_VERSION

T = TypeVar("T")


def api_client_from(kubeconfig: Mapping[str, Any] | str | None) -> ApiClient:
    """A client from a kubeconfig dict, a kubeconfig path, or (None) the in-cluster config."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    elif isinstance(kubeconfig, str):
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        kubernetes.config.load_kube_config_from_dict(dict(kubeconfig), client_configuration=configuration)
    return ApiClient(configuration)


def is_status(exc: BaseException, code: int) -> bool:
    """Classify API errors by the server's status code, never by parsing messages."""
    return isinstance(exc, ApiException) and exc.status == code


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

    async def list_policies(self) -> list[dict[str, Any]]:
        result = await self.call(
            self.custom.list_cluster_custom_object, API_GROUP, API_VERSION, "grantpolicies"
        )
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.request_timeout is not None:
            kwargs.setdefault("_request_timeout", self.request_timeout)
        return await asyncio.to_thread(fn, *args, **kwargs)

    @property
    def rbac(self) -> RbacAuthorizationV1Api:
        return RbacAuthorizationV1Api(self.client)

    @property
    def custom(self) -> CustomObjectsApi:
        return CustomObjectsApi(self.client)

    async def get_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.call(
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                "accessrequests",
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def get_policy(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.call(
                self.custom.get_cluster_custom_object, API_GROUP, API_VERSION, "grantpolicies", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> dict[str, Any]:
        """Merge-patch the status; the resourceVersion precondition makes a stale writer lose."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        result: dict[str, Any] = await self.call(
            self.custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            "accessrequests",
            name,
            body,
        )
        return result
