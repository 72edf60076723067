"""The cluster port: everything the handlers ask of a cluster, as one typed interface.

`ClusterApi` (clusters/own.py) implements it with the official client; `jitgrant_testing.fakeport`
implements it in memory for fast unit tests of the reconciler and the sweep. Every method raises only
the `clusters.errors` family, so the handlers never see the Kubernetes client or urllib3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jitgrant.models import AccessRequest, GrantPolicySpec, Phase


@dataclass(frozen=True)
class StoredRequest:
    """An AccessRequest as the API server stored it.

    The raw body travels with the model because the requester seal and the approval receipts are
    over the spec exactly as stored; `parse()` gives the model (and raises pydantic's
    ValidationError for a request that does not parse, which the reconciler fails with the field).
    """

    body: Mapping[str, Any]

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta: Mapping[str, Any] = self.body.get("metadata") or {}
        return meta

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def uid(self) -> str:
        return str(self.metadata.get("uid") or "")

    @property
    def resource_version(self) -> str | None:
        value = self.metadata.get("resourceVersion")
        return None if value is None else str(value)

    @property
    def deleting(self) -> bool:
        return bool(self.metadata.get("deletionTimestamp"))

    @property
    def finalizers(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("finalizers") or ())

    @property
    def annotations(self) -> Mapping[str, str]:
        annotations: Mapping[str, str] = self.metadata.get("annotations") or {}
        return annotations

    @property
    def spec(self) -> Mapping[str, Any]:
        spec: Mapping[str, Any] = self.body.get("spec") or {}
        return spec

    @property
    def phase(self) -> Phase | None:
        raw = (self.body.get("status") or {}).get("phase")
        try:
            return None if raw is None else Phase(raw)
        except ValueError:
            return None

    def parse(self) -> AccessRequest:
        return AccessRequest.from_object(self.body)


@dataclass(frozen=True)
class StoredPolicy:
    name: str
    spec: Mapping[str, Any]

    def parse(self) -> GrantPolicySpec:
        """The policy's model; raises pydantic's ValidationError when it does not parse."""
        return GrantPolicySpec.model_validate(dict(self.spec))


@dataclass(frozen=True)
class ClusterObject:
    """One namespaced object of a grant as the cluster has it (what ownership is judged on)."""

    kind: str  # "RoleBinding" | "Role" | "ServiceAccount" | "Secret"
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class ClusterPort(Protocol):
    """One cluster: the operator's own (requests, policies, kubeconfig Secrets) or a grant's target."""

    @property
    def name(self) -> str: ...

    @property
    def server(self) -> str: ...

    @property
    def ca_pem(self) -> bytes | None: ...

    async def get_request(self, namespace: str, name: str) -> StoredRequest | None: ...

    async def list_requests(self) -> list[StoredRequest]:
        """Every AccessRequest in all namespaces (paged), for the sweep: one LIST, not a GET each."""
        ...

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> StoredRequest:
        """Merge-patch status; with `resource_version` a stale writer gets `Conflict`."""
        ...

    async def update_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str | None
    ) -> StoredRequest:
        """Set the request's finalizers; with `resource_version` a stale writer gets `Conflict`."""
        ...

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete only the request with this uid (its finalizer then runs as for any deletion);
        False when it is gone already or another request holds the name."""
        ...

    async def get_policy(self, name: str) -> StoredPolicy | None: ...

    async def list_policies(self) -> list[StoredPolicy]: ...

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        """Create a namespaced object; `Conflict` if the name is taken, `NotFound` if the namespace is."""
        ...

    async def read_object(self, kind: str, namespace: str, name: str) -> ClusterObject | None: ...

    async def delete_object(self, kind: str, namespace: str, name: str, *, uid: str) -> bool:
        """Delete only the object with this uid; False when it is gone or has another uid."""
        ...

    async def list_labelled(
        self, kinds: Sequence[str], *, selector: str, namespace: str | None = None
    ) -> list[ClusterObject]:
        """Every object of `kinds` that the label selector matches (paged), in all namespaces or,
        with `namespace`, in that one only (where the operator may not list cluster-wide)."""
        ...

    async def mint_token(self, *, namespace: str, service_account: str, seconds: int) -> str: ...

    def close(self) -> None: ...
