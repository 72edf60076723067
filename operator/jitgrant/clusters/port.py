"""The cluster port, in two parts composed as controller-runtime composes `client.Client` from its
`Reader`, `Writer` and `StatusClient`:

- `RequestStore`: the operator's own cluster as the store of its requests and policies (reads,
  status, finalizers, the deleter's stamp, the policy's Ready status, and the access review that
  asks who may delete a request);
- `GrantTarget`: a cluster a grant is made in (its objects, the ServiceAccount token, the live rules
  of a ClusterRole and whether the operator may bind it);
- `ClusterPort`: both, which is what the operator's own cluster is.

`ClusterApi` (clusters/own.py) implements both with the official client; `jitgrant_testing.fakeport`
in memory, ClusterRoles included, for fast unit tests of the reconciler and the sweep. Every method
raises only the `clusters.errors` family, so the engine never sees the Kubernetes client or urllib3,
and nothing unwraps a port to reach the client underneath.
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


@dataclass(frozen=True)
class ClusterRoleRead:
    """A ClusterRole as read for a check. `found` None: the operator may not read it (or the port
    cannot tell); False: it does not exist."""

    found: bool | None
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccessSubject:
    """Whom a SubjectAccessReview asks about: the identity an admission request's userInfo names."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any]) -> AccessSubject:
        extra = userinfo.get("extra") or {}
        return cls(
            username=str(userinfo.get("username") or ""),
            uid=str(userinfo.get("uid") or ""),
            groups=tuple(str(group) for group in userinfo.get("groups") or ()),
            extra={str(key): tuple(str(v) for v in values or ()) for key, values in extra.items()},
        )


class RequestStore(Protocol):
    """The operator's own cluster as the store of AccessRequests and GrantPolicies."""

    @property
    def name(self) -> str: ...

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

    async def annotate_request(
        self, namespace: str, name: str, annotations: Mapping[str, str], *, uid: str
    ) -> StoredRequest:
        """Merge `annotations` into the request with this uid (the API server refuses a patch that
        changes metadata.uid). An admission-time write (the deleter's stamp): any replica makes it."""
        ...

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        """Delete only the request with this uid (its finalizer then runs as for any deletion);
        False when it is gone already or another request holds the name."""
        ...

    async def get_policy(self, name: str) -> StoredPolicy | None: ...

    async def list_policies(self) -> list[StoredPolicy]: ...

    async def read_policy_object(self, name: str) -> Mapping[str, Any] | None:
        """The whole GrantPolicy (metadata with its generation, spec, status), or None."""
        ...

    async def list_policy_objects(self) -> list[Mapping[str, Any]]: ...

    async def read_namespace_labels(self, name: str) -> dict[str, str] | None:
        """A Namespace's labels (a policy's namespaceSelector is matched against them); None when it
        does not exist or the operator may not read it."""
        ...

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None: ...

    async def subject_may(
        self, subject: AccessSubject, *, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> bool | None:
        """Whether the API server's authorizer lets `subject` do `verb` on one object (a
        SubjectAccessReview, a read every replica may make). None: this port cannot ask."""
        ...

    def close(self) -> None: ...


class GrantTarget(Protocol):
    """A cluster a grant is made in: the operator's own, or a target reached through a connection."""

    @property
    def name(self) -> str: ...

    @property
    def server(self) -> str: ...

    @property
    def ca_pem(self) -> bytes | None: ...

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

    async def read_cluster_role(self, name: str) -> ClusterRoleRead:
        """The ClusterRole's live rules (404: not found; 403: found None); other errors raise."""
        ...

    async def may_bind(self, cluster_role: str) -> bool | None:
        """Whether the operator's own identity may bind this ClusterRole (a SelfSubjectAccessReview)."""
        ...

    def close(self) -> None: ...


class ClusterPort(RequestStore, GrantTarget, Protocol):
    """The operator's own cluster: the store of its requests, and a grant target too."""
