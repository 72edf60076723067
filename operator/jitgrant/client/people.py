"""PeopleClient: the API calls of the people's commands (`jitgrant list|get|describe|approve|deny|
revoke|activity|who-can|exposure|identity refresh`), over the same Connection as the agent's client.

Unlike `Client`, it acts for approvers and platform teams: it reads any request the caller's RBAC
lets it read, and returns objects as the API server sends them (dicts), since the commands print
them in kubectl's shapes. Errors are the client's family: `RequestNotFound`, `ApiRefused` (with the
HTTP status), `ApiUnreachable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from jitgrant.client._api import Connection
from jitgrant.client.errors import ApiRefused, RequestNotFound
from jitgrant.client.paths import policy_path, request_path
from jitgrant.client.results import Identity
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import Reason

T = TypeVar("T")
CLUSTER_ROLES = "/apis/rbac.authorization.k8s.io/v1/clusterroles"


class PeopleClient:
    """Blocking calls on their own event loop, as `Client`; close() (or `with`) when done."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._runner = asyncio.Runner()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    @property
    def host(self) -> str:
        return self.connection.host

    def close(self) -> None:
        try:
            self._run(self.connection.close())
        finally:
            self._runner.close()

    def __enter__(self) -> PeopleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- any call --------------------------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        answer = self._run(
            self.connection.call(method, path, body=body, params=params, content_type=content_type)
        )
        return answer.body

    # -- AccessRequests --------------------------------------------------------------------------
    @staticmethod
    def _requests_path(namespace: str | None) -> str:
        if namespace is None:
            return f"/apis/{API_GROUP}/{API_VERSION}/accessrequests"
        return request_path(namespace)

    def list_requests(self, namespace: str | None, *, selector: str | None = None) -> dict[str, Any]:
        """The List (items and metadata.resourceVersion); `namespace` None: every namespace."""
        params = {"labelSelector": selector} if selector else None
        return self.call("GET", self._requests_path(namespace), params=params)

    def get_request(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.call("GET", request_path(namespace, name))
        except ApiRefused as exc:
            if exc.status == 404:
                raise RequestNotFound(
                    f"AccessRequest {namespace}/{name} not found; `jitgrant list -n {namespace}` shows "
                    "what exists",
                    reason=Reason.REQUEST_NOT_FOUND,
                ) from exc
            raise

    def annotate_request(self, namespace: str, name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
        """A merge patch of the request's annotations (the webhook records decisions from them)."""
        try:
            return self.call(
                "PATCH",
                request_path(namespace, name),
                body={"metadata": {"annotations": dict(annotations)}},
                content_type="application/merge-patch+json",
            )
        except ApiRefused as exc:
            if exc.status == 404:
                raise RequestNotFound(
                    f"AccessRequest {namespace}/{name} not found; `jitgrant list -n {namespace}` shows "
                    "what exists",
                    reason=Reason.REQUEST_NOT_FOUND,
                ) from exc
            raise

    def watch_requests(
        self,
        namespace: str | None,
        resource_version: str,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) for each change after `resource_version`, as `kubectl get -w` follows them:
        until `timeout` seconds have passed (None: until interrupted) or the server ends the watch."""
        base: dict[str, str] = {}
        if selector:
            base["labelSelector"] = selector
        if field_selector:
            base["fieldSelector"] = field_selector
        started = self._run(_now())
        version = resource_version
        while True:
            events = self.connection.watch(
                self._requests_path(namespace), {**base, "resourceVersion": version}
            )
            try:
                while True:
                    left = None if timeout is None else timeout - (self._run(_now()) - started)
                    if left is not None and left <= 0:
                        return
                    event = self._run(_next(events, left))
                    if event is None:
                        break  # the server ended this watch: resume from the last version seen
                    kind, obj = str(event.get("type")), event.get("object")
                    if not isinstance(obj, dict):
                        continue
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        yield kind, obj
                    elif kind == "ERROR":
                        raise ApiRefused(str(obj.get("message") or obj), status=int(obj.get("code") or 500))
            finally:
                self._run(_aclose(events))
            if timeout is not None and self._run(_now()) - started >= timeout:
                return

    # -- what a request refers to ----------------------------------------------------------------
    def get_policy(self, name: str) -> dict[str, Any]:
        return self.call("GET", policy_path(name))

    def list_policies(self) -> list[dict[str, Any]]:
        return list(self.call("GET", policy_path()).get("items") or ())

    def get_cluster_role(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"{CLUSTER_ROLES}/{name}")

    def list_cluster_roles(self) -> list[dict[str, Any]]:
        return list(self.call("GET", CLUSTER_ROLES).get("items") or ())

    def whoami(self) -> Identity:
        body = self.call(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        info = (body.get("status") or {}).get("userInfo") or {}
        return Identity(
            username=str(info.get("username") or ""),
            uid=str(info.get("uid") or ""),
            groups=tuple(info.get("groups") or ()),
        )


async def _now() -> float:
    return asyncio.get_running_loop().time()


async def _next(events: AsyncIterator[dict[str, Any]], seconds: float | None) -> dict[str, Any] | None:
    """The next event; None when the watch ended, or when `seconds` passed without one."""
    try:
        async with asyncio.timeout(seconds):
            return await anext(events)
    except (StopAsyncIteration, TimeoutError):
        return None


async def _aclose(events: AsyncIterator[dict[str, Any]]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
