"""The API calls the console makes, each as the signed-in person (their kubeconfig or their token).

The console holds no credentials of its own for AccessRequests or GrantPolicies: every read, every
approve/deny/revoke annotation and every watch goes out on the Connection of the person whose session
asked for it, so RBAC and the admission webhooks see that person, exactly as for `jitgrant approve`.
(The client's `AsyncClient` reads only the caller's own requests, by design for agents; an approver
reads others', so the console makes its few REST calls on the client's Connection itself.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from jitgrant.client import Connection
from jitgrant.client.errors import ApiRefused
from jitgrant.client.paths import ALL_REQUESTS, policy_path, request_path


@dataclass(frozen=True)
class Me:
    """The signed-in person as the API server authenticates them (a SelfSubjectReview)."""

    username: str
    groups: tuple[str, ...]


@dataclass
class Listing:
    items: list[dict[str, Any]]
    # Where the list was read from: every namespace, or only the person's own (403 cluster-wide).
    scope: str
    version: str


class UserApi:
    """One person's view of the API server."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._me: Me | None = None

    async def close(self) -> None:
        await self.connection.close()

    async def whoami(self) -> Me:
        if self._me is None:
            answer = await self.connection.call(
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
            info = (answer.body.get("status") or {}).get("userInfo") or {}
            self._me = Me(username=str(info.get("username") or ""), groups=tuple(info.get("groups") or ()))
        return self._me

    async def requests(self) -> Listing:
        """Every AccessRequest the person may list: cluster-wide, else in their default namespace."""
        try:
            body = (await self.connection.call("GET", ALL_REQUESTS)).body
            return Listing(
                items=list(body.get("items") or []), scope="all namespaces", version=_version(body)
            )
        except ApiRefused as exc:
            if exc.status != 403:
                raise
        namespace = self.connection.namespace
        body = (await self.connection.call("GET", request_path(namespace))).body
        return Listing(
            items=list(body.get("items") or []), scope=f"namespace {namespace}", version=_version(body)
        )

    async def request(self, namespace: str, name: str) -> dict[str, Any]:
        return (await self.connection.call("GET", request_path(namespace, name))).body

    async def policies(self) -> list[dict[str, Any]]:
        body = (await self.connection.call("GET", policy_path())).body
        return list(body.get("items") or [])

    async def policy(self, name: str) -> dict[str, Any] | None:
        """The policy, or None when it is missing or the person may not read it."""
        try:
            return (await self.connection.call("GET", policy_path(name))).body
        except ApiRefused as exc:
            if exc.status in (403, 404):
                return None
            raise

    async def annotate(self, namespace: str, name: str, annotations: Mapping[str, str]) -> dict[str, Any]:
        """The CLI's approve/deny/revoke: a merge patch of one annotation, which the webhook turns
        into a recorded decision (or refuses, with its reason as the error's message)."""
        answer = await self.connection.call(
            "PATCH",
            request_path(namespace, name),
            body={"metadata": {"annotations": dict(annotations)}},
            content_type="application/merge-patch+json",
        )
        return answer.body

    async def watch_requests(self, listing: Listing) -> AsyncIterator[dict[str, Any]]:
        """Watch events of the AccessRequests `listing` read, from its resourceVersion on, until the
        server ends the watch; the caller lists again and starts another."""
        path = ALL_REQUESTS if listing.scope == "all namespaces" else request_path(self.connection.namespace)
        async for event in self.connection.watch(path, {"resourceVersion": listing.version}):
            yield event


def _version(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")
