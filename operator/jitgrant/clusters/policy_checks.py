"""What the GrantPolicy checks read and write in a cluster: the policy object itself (with its
status and generation), a ClusterRole's live rules, whether the operator may bind it, and the
policy's status subresource.

Works on any cluster client that carries the official client as `.client` (ClusterApi), also behind
wrappers that keep it as `.inner` (FencedCluster); each call runs in a thread, as every other call of
the operator does. A client without one (a test double) reads the policy through its `get_policy`
and answers "unknown" for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from kubernetes.client import AuthorizationV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.errors import classify_kubernetes_error
from jitgrant.models import API_GROUP, API_VERSION

PLURAL = "grantpolicies"
_TIMEOUT = (5.0, 20.0)


def _client(api: Any) -> Any:
    """The official client under `api`, through wrappers that keep the real port as `.inner`
    (FencedCluster): missing it would silently skip the ClusterRole check for in-cluster grants."""
    seen = 0
    while api is not None and seen < 8:
        client = getattr(api, "client", None)
        if client is not None:
            return client
        api, seen = getattr(api, "inner", None), seen + 1
    return None


def _timeout(api: Any) -> tuple[float, float]:
    """The port's own (connect, read) timeouts: a target's are short, so a silent API server holds
    the grant-time ClusterRole check for seconds, as it holds the grant itself."""
    seen = 0
    while api is not None and seen < 8:
        configured = getattr(api, "request_timeout", None)
        if configured is not None:
            return tuple(configured)
        api, seen = getattr(api, "inner", None), seen + 1
    return _TIMEOUT


def _cluster_name(api: Any) -> str:
    seen = 0
    while api is not None and seen < 8:
        name = getattr(api, "name", None)
        if isinstance(name, str):
            return name
        api, seen = getattr(api, "inner", None), seen + 1
    return "target"


async def _call(fn: Any, *args: Any, limits: tuple[float, float] = _TIMEOUT, cluster: str = "target") -> Any:
    try:
        return await asyncio.to_thread(fn, *args, _request_timeout=limits)
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # no answer: retryable, for the reconciler
        raise classify_kubernetes_error(exc, cluster=cluster) from exc


async def read_policy(api: Any, name: str) -> Mapping[str, Any] | None:
    """The whole GrantPolicy object (metadata, spec, status), or None when it does not exist."""
    client = _client(api)
    if client is None:
        stored = await api.get_policy(name)
        if stored is None or isinstance(stored, Mapping):
            return stored
        return {"metadata": {"name": name}, "spec": dict(stored.spec)}
    try:
        body: Mapping[str, Any] = await _call(
            CustomObjectsApi(client).get_cluster_custom_object, API_GROUP, API_VERSION, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return body


async def list_policies(api: Any) -> list[Mapping[str, Any]]:
    client = _client(api)
    if client is None:
        return []
    result = await _call(CustomObjectsApi(client).list_cluster_custom_object, API_GROUP, API_VERSION, PLURAL)
    items: list[Mapping[str, Any]] = result.get("items", [])
    return items


async def patch_policy_status(api: Any, name: str, status: Mapping[str, Any]) -> None:
    client = _client(api)
    if client is None:
        return
    await _call(
        CustomObjectsApi(client).patch_cluster_custom_object_status,
        API_GROUP,
        API_VERSION,
        PLURAL,
        name,
        {"status": dict(status)},
    )


@dataclass(frozen=True)
class ClusterRoleRead:
    """`found` None: the operator may not read it (or the client cannot tell)."""

    found: bool | None
    body: Mapping[str, Any]


async def read_cluster_role(api: Any, name: str) -> ClusterRoleRead:
    client = _client(api)
    if client is None:
        return ClusterRoleRead(found=None, body={})
    try:
        read = RbacAuthorizationV1Api(client).read_cluster_role
        role = await _call(read, name, limits=_timeout(api), cluster=_cluster_name(api))
    except ApiException as exc:
        if exc.status == 404:
            return ClusterRoleRead(found=False, body={})
        if exc.status == 403:
            return ClusterRoleRead(found=None, body={})
        # The reconciler handles the clusters.errors family only (e.g. a 401 fails the request).
        raise classify_kubernetes_error(exc, cluster=_cluster_name(api)) from exc
    body: Mapping[str, Any] = client.sanitize_for_serialization(role)
    return ClusterRoleRead(found=True, body=body)


async def may_bind(api: Any, cluster_role: str) -> bool | None:
    """Whether the operator's own identity may bind this ClusterRole (a SelfSubjectAccessReview)."""
    client = _client(api)
    if client is None:
        return None
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
    result = await _call(AuthorizationV1Api(client).create_self_subject_access_review, review)
    return bool(result.status.allowed)


async def read_namespace_labels(api: Any, name: str) -> dict[str, str] | None:
    """A Namespace's labels (a policy's namespaceSelector is matched against them); None when it does
    not exist or cannot be read by this client."""
    client = _client(api)
    if client is None:
        return None
    try:
        namespace = await _call(CoreV1Api(client).read_namespace, name, limits=_timeout(api))
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise classify_kubernetes_error(exc, cluster=_cluster_name(api)) from exc
    return dict(namespace.metadata.labels or {})
