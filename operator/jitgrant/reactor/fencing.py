"""Fencing: the leader's writes to the own cluster and to the audit trail, refused once it no
longer holds the Lease.

`FencedCluster` refuses every write while `LeaderElection.holds()` is False (local, no API call), and
reads the Lease itself before a write that grants (object creation, token minting): a replica that
lost the Lease stops acting at once, even in the middle of a reconcile.

`FencedAudit` refuses every audit record on the same local check: a leader paused past its Lease
(SIGSTOP, a long GC, a frozen VM) that wakes mid-pass writes no record of a transition the new leader
now owns. Records it wrote while it held the Lease stay; the new leader may write one of them again
(its status write never landed), under the same `transitionId`, which readers fold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jitgrant.audit.records import AuditEvent
from jitgrant.clusters.errors import NotLeader
from jitgrant.clusters.leader import LeaderElection
from jitgrant.clusters.port import (
    AccessSubject,
    ClusterObject,
    ClusterPort,
    ClusterRoleRead,
    StoredPolicy,
    StoredRequest,
)
from jitgrant.models.vocabulary import EventType
from jitgrant.reconcile.ports import AuditPort

__all__ = ["FencedAudit", "FencedCluster", "LeaderElection"]


class FencedCluster:
    """The operator's own cluster, writable only while this replica holds the Lease."""

    def __init__(self, inner: ClusterPort, election: LeaderElection) -> None:
        self.inner = inner
        self.election = election

    def _check(self, what: str) -> None:
        if not self.election.holds():
            raise NotLeader(f"{self.election.identity} does not hold the Lease; refused to {what}")

    async def _confirm(self, what: str) -> None:
        if not await self.election.confirm():
            raise NotLeader(f"{self.election.identity} does not hold the Lease; refused to {what}")

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def server(self) -> str:
        return self.inner.server

    @property
    def ca_pem(self) -> bytes | None:
        return self.inner.ca_pem

    async def get_request(self, namespace: str, name: str) -> StoredRequest | None:
        return await self.inner.get_request(namespace, name)

    async def list_requests(self) -> list[StoredRequest]:
        return await self.inner.list_requests()

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> StoredRequest:
        self._check(f"write the status of {namespace}/{name}")
        return await self.inner.patch_request_status(
            namespace, name, status, resource_version=resource_version
        )

    async def update_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str | None
    ) -> StoredRequest:
        self._check(f"update the finalizers of {namespace}/{name}")
        return await self.inner.update_finalizers(
            namespace, name, finalizers, resource_version=resource_version
        )

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        self._check(f"delete AccessRequest {namespace}/{name}")
        return await self.inner.delete_request(namespace, name, uid=uid)

    async def get_policy(self, name: str) -> StoredPolicy | None:
        return await self.inner.get_policy(name)

    async def list_policies(self) -> list[StoredPolicy]:
        return await self.inner.list_policies()

    async def annotate_request(
        self, namespace: str, name: str, annotations: Mapping[str, str], *, uid: str
    ) -> StoredRequest:
        # Not fenced: admission's write (the deleter's stamp), made by whichever replica the API
        # server called, for the request being deleted right then.
        return await self.inner.annotate_request(namespace, name, annotations, uid=uid)

    async def read_policy_object(self, name: str) -> Mapping[str, Any] | None:
        return await self.inner.read_policy_object(name)

    async def list_policy_objects(self) -> list[Mapping[str, Any]]:
        return await self.inner.list_policy_objects()

    async def read_namespace_labels(self, name: str) -> dict[str, str] | None:
        return await self.inner.read_namespace_labels(name)

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._check(f"write the status of GrantPolicy {name}")
        await self.inner.patch_policy_status(name, status)

    async def subject_may(
        self, subject: AccessSubject, *, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> bool | None:
        # A read: every replica serves the webhooks that ask it.
        return await self.inner.subject_may(
            subject, verb=verb, group=group, resource=resource, namespace=namespace, name=name
        )

    async def read_cluster_role(self, name: str) -> ClusterRoleRead:
        return await self.inner.read_cluster_role(name)

    async def may_bind(self, cluster_role: str) -> bool | None:
        return await self.inner.may_bind(cluster_role)

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        meta = body.get("metadata") or {}
        await self._confirm(f"create {body.get('kind')} {meta.get('namespace')}/{meta.get('name')}")
        return await self.inner.create_object(body)

    async def read_object(self, kind: str, namespace: str, name: str) -> ClusterObject | None:
        return await self.inner.read_object(kind, namespace, name)

    async def delete_object(self, kind: str, namespace: str, name: str, *, uid: str) -> bool:
        self._check(f"delete {kind} {namespace}/{name}")
        return await self.inner.delete_object(kind, namespace, name, uid=uid)

    async def list_labelled(
        self, kinds: Sequence[str], *, selector: str, namespace: str | None = None
    ) -> list[ClusterObject]:
        return await self.inner.list_labelled(kinds, selector=selector, namespace=namespace)

    async def mint_token(self, *, namespace: str, service_account: str, seconds: int) -> str:
        await self._confirm(f"mint a token for {namespace}/{service_account}")
        return await self.inner.mint_token(
            namespace=namespace, service_account=service_account, seconds=seconds
        )

    def close(self) -> None:
        self.inner.close()


# Not transitions of a request: every replica answers admission, so each records the refusals it made
# itself (bounded per requester per minute); fencing them would lose those a standby made.
_UNFENCED = frozenset({EventType.REFUSED})


class FencedAudit:
    """The audit trail, written to only while this replica holds the Lease (a local check: the
    trail's own records, checkpoints and deliveries are not transitions and are not fenced)."""

    def __init__(self, inner: AuditPort, election: LeaderElection) -> None:
        self.inner = inner
        self.election = election

    def __getattr__(self, name: str) -> Any:
        # Everything that is not a record (sink health for the metrics, delivery hooks) is the trail's.
        return getattr(self.inner, name)

    def _check(self, event: AuditEvent) -> None:
        if event.type in _UNFENCED:
            return
        if not self.election.holds():
            raise NotLeader(
                f"{self.election.identity} does not hold the Lease; refused to record "
                f"{event.type.value} of {event.request_namespace}/{event.request_name}"
            )

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def depth(self) -> int:
        return self.inner.depth()

    async def record_before_grant(self, event: AuditEvent) -> object:
        self._check(event)
        return await self.inner.record_before_grant(event)

    async def record(self, event: AuditEvent) -> object:
        self._check(event)
        return await self.inner.record(event)
