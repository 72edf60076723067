"""An in-memory cluster behind the cluster port, for fast unit tests of the reconciler and the sweep.

Small on purpose (httpx's `MockTransport` is the model): requests, policies and namespaced objects in
dicts, resourceVersions and uids, the status subresource's resourceVersion precondition, and the
error family of `jitgrant.clusters.errors`. Tests inject faults by method name: an error before the
call takes effect (`fail`), or a callback after it took effect (`after`, e.g. a revoke landing between
a binding's creation and the status write), so every interleaving can be played without a server.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jitgrant.audit.records import AuditEvent, EventType
from jitgrant.audit.trail import AuditUnavailable
from jitgrant.clusters.errors import Conflict, NotFound
from jitgrant.clusters.port import AccessSubject, ClusterObject, ClusterRoleRead, StoredPolicy, StoredRequest
from jitgrant.identity.stamp import seal_requester, stamp_to_wire
from jitgrant.models import RequesterStamp
from jitgrant.models.vocabulary import FINALIZER, REQUESTER_SEAL_ANNOTATION, Reason

Key = tuple[str, str, str]  # kind, namespace, name


def _merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7386): what the API server does with a merge-patch of status."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


@dataclass
class FakeCluster:
    """The stored state one or more ports look at."""

    requests: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # ClusterRoles by name, as `rbac.authorization.k8s.io/v1` bodies (their rules are what the grant
    # and the Ready condition check); those the operator may not bind; who may delete a request.
    cluster_roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    unbindable: set[str] = field(default_factory=set)
    deleters: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=lambda: {"agents", "payments", "jitgrant-grants"})
    # Labels of the namespaces a test gives labels (a namespaceSelector policy is matched against them).
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_version(self) -> str:
        return str(next(self._counter))

    def new_uid(self) -> str:
        return f"{next(self._counter):08d}-uid"

    # --- what people do ---------------------------------------------------------------------------

    def add_policy(self, name: str, spec: Mapping[str, Any]) -> None:
        self.policies[name] = {"metadata": {"name": name, "generation": 1}, "spec": copy.deepcopy(dict(spec))}

    def add_cluster_role(self, name: str, rules: Sequence[Mapping[str, Any]]) -> None:
        self.cluster_roles[name] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [dict(rule) for rule in rules],
        }

    def file_request(
        self, namespace: str, name: str, spec: Mapping[str, Any], *, requester: RequesterStamp, key: bytes
    ) -> dict[str, Any]:
        """A request as it is stored after the admission webhook stamped and sealed it."""
        stamped = {**copy.deepcopy(dict(spec)), "requester": stamp_to_wire(requester)}
        body = {
            "apiVersion": "jitgrant.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {
                "namespace": namespace,
                "name": name,
                "uid": self.new_uid(),
                "resourceVersion": self.next_version(),
                "finalizers": [FINALIZER],  # kopf adds it on first sight
                "annotations": {
                    REQUESTER_SEAL_ANNOTATION: seal_requester(
                        key=key, namespace=namespace, name=name, spec=stamped
                    )
                },
            },
            "spec": stamped,
        }
        self.requests[(namespace, name)] = body
        return body

    def annotate(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        body = self.requests[(namespace, name)]
        body["metadata"].setdefault("annotations", {}).update(annotations)
        body["metadata"]["resourceVersion"] = self.next_version()

    def mark_deleted(self, namespace: str, name: str) -> dict[str, Any]:
        body = self.requests[(namespace, name)]
        body["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["metadata"]["resourceVersion"] = self.next_version()
        return copy.deepcopy(body)

    def remove(self, namespace: str, name: str) -> None:
        """The finalizer was released: the request is gone, and with it what it owns by reference."""
        body = self.requests.pop((namespace, name))
        uid = body["metadata"]["uid"]
        for key, obj in list(self.objects.items()):
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ()):
                del self.objects[key]

    def phase(self, namespace: str, name: str) -> str | None:
        body = self.requests.get((namespace, name))
        phase: str | None = None if body is None else (body.get("status") or {}).get("phase")
        return phase


@dataclass
class FakePort:
    """The cluster port over a `FakeCluster`."""

    cluster: FakeCluster
    name: str = "in-cluster"
    server: str = "https://fake.invalid"
    ca_pem: bytes | None = None
    calls: list[str] = field(default_factory=list)
    _fail: dict[str, list[BaseException]] = field(default_factory=dict)
    _after: dict[str, list[Callable[[], None]]] = field(default_factory=dict)

    def fail(self, method: str, error: BaseException) -> None:
        """The next call of `method` raises `error` before it takes effect."""
        self._fail.setdefault(method, []).append(error)

    def after(self, method: str, effect: Callable[[], None]) -> None:
        """Right after the next call of `method` took effect, `effect` runs (a concurrent writer)."""
        self._after.setdefault(method, []).append(effect)

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        pending = self._fail.get(method)
        if pending:
            raise pending.pop(0)

    def _leave(self, method: str) -> None:
        pending = self._after.get(method)
        if pending:
            pending.pop(0)()

    def close(self) -> None:
        pass

    # --- requests and policies ----------------------------------------------------------------------

    async def get_request(self, namespace: str, name: str) -> StoredRequest | None:
        self._enter("get_request")
        body = self.cluster.requests.get((namespace, name))
        stored = None if body is None else StoredRequest(copy.deepcopy(body))
        self._leave("get_request")  # a writer that lands right after our read
        return stored

    async def list_requests(self) -> list[StoredRequest]:
        self._enter("list_requests")
        return [StoredRequest(copy.deepcopy(body)) for body in self.cluster.requests.values()]

    def _to_write(self, namespace: str, name: str, resource_version: str | None) -> dict[str, Any]:
        """The stored request a write applies to, refused as the API server refuses it."""
        body = self.cluster.requests.get((namespace, name))
        if body is None:
            raise NotFound(
                reason=Reason.CLUSTER_OBJECT_NOT_FOUND, message=f"{name} not found", retryable=False
            )
        if resource_version is not None and resource_version != body["metadata"]["resourceVersion"]:
            raise Conflict(
                reason=Reason.CLUSTER_CONFLICT,
                message="the object has been modified; please apply your changes to the latest version",
                retryable=False,
                status=409,
            )
        return body

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> StoredRequest:
        self._enter("patch_request_status")
        body = self._to_write(namespace, name, resource_version)
        _merge(body.setdefault("status", {}), status)
        body["metadata"]["resourceVersion"] = self.cluster.next_version()
        self._leave("patch_request_status")
        return StoredRequest(copy.deepcopy(body))

    async def update_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str | None
    ) -> StoredRequest:
        self._enter("update_finalizers")
        body = self._to_write(namespace, name, resource_version)
        body["metadata"]["finalizers"] = list(finalizers)
        body["metadata"]["resourceVersion"] = self.cluster.next_version()
        stored = StoredRequest(copy.deepcopy(body))
        if not finalizers and body["metadata"].get("deletionTimestamp"):
            self.cluster.remove(namespace, name)  # the last finalizer of a deleted object: gone
        self._leave("update_finalizers")
        return stored

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        """Marks it deleting while it has finalizers (tests release them), else removes it."""
        self._enter("delete_request")
        body = self.cluster.requests.get((namespace, name))
        if body is None or body["metadata"]["uid"] != uid:
            return False
        if body["metadata"].get("finalizers"):
            self.cluster.mark_deleted(namespace, name)
        else:
            self.cluster.remove(namespace, name)
        self._leave("delete_request")
        return True

    async def get_policy(self, name: str) -> StoredPolicy | None:
        self._enter("get_policy")
        body = self.cluster.policies.get(name)
        return None if body is None else StoredPolicy(name=name, spec=copy.deepcopy(body["spec"]))

    async def list_policies(self) -> list[StoredPolicy]:
        self._enter("list_policies")
        return [StoredPolicy(name=n, spec=copy.deepcopy(b["spec"])) for n, b in self.cluster.policies.items()]

    async def annotate_request(
        self, namespace: str, name: str, annotations: Mapping[str, str], *, uid: str
    ) -> StoredRequest:
        self._enter("annotate_request")
        body = self._to_write(namespace, name, None)
        if body["metadata"]["uid"] != uid:
            raise Conflict(reason=Reason.CLUSTER_CONFLICT, message="uid changed", retryable=False, status=409)
        self.cluster.annotate(namespace, name, annotations)
        self._leave("annotate_request")
        return StoredRequest(copy.deepcopy(body))

    async def read_policy_object(self, name: str) -> Mapping[str, Any] | None:
        self._enter("read_policy_object")
        body = self.cluster.policies.get(name)
        return None if body is None else copy.deepcopy(body)

    async def list_policy_objects(self) -> list[Mapping[str, Any]]:
        self._enter("list_policy_objects")
        return [copy.deepcopy(body) for body in self.cluster.policies.values()]

    async def read_namespace_labels(self, name: str) -> dict[str, str] | None:
        self._enter("read_namespace_labels")
        labels = self.cluster.namespace_labels.get(name)
        return None if labels is None else dict(labels)

    async def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._enter("patch_policy_status")
        body = self.cluster.policies.get(name)
        if body is None:
            raise NotFound(
                reason=Reason.CLUSTER_OBJECT_NOT_FOUND, message=f"{name} not found", retryable=False
            )
        _merge(body.setdefault("status", {}), status)
        self._leave("patch_policy_status")

    async def subject_may(
        self, subject: AccessSubject, *, verb: str, group: str, resource: str, namespace: str, name: str
    ) -> bool | None:
        self._enter("subject_may")
        return verb == "delete" and subject.username in self.cluster.deleters

    # --- ClusterRoles ---------------------------------------------------------------------------------

    async def read_cluster_role(self, name: str) -> ClusterRoleRead:
        self._enter("read_cluster_role")
        body = self.cluster.cluster_roles.get(name)
        return ClusterRoleRead(found=False) if body is None else ClusterRoleRead(True, copy.deepcopy(body))

    async def may_bind(self, cluster_role: str) -> bool | None:
        self._enter("may_bind")
        return cluster_role not in self.cluster.unbindable

    # --- grant objects --------------------------------------------------------------------------------

    @staticmethod
    def _view(body: Mapping[str, Any]) -> ClusterObject:
        meta = body["metadata"]
        return ClusterObject(
            kind=body["kind"],
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        self._enter("create_object")
        meta = body["metadata"]
        key = (str(body["kind"]), str(meta["namespace"]), str(meta["name"]))
        if key[1] not in self.cluster.namespaces:
            raise NotFound(
                reason=Reason.CLUSTER_OBJECT_NOT_FOUND,
                message=f'namespaces "{key[1]}" not found',
                retryable=False,
                status=404,
                details_kind="namespaces",
            )
        if key in self.cluster.objects:
            raise Conflict(
                reason=Reason.CLUSTER_CONFLICT, message=f"{key} already exists", retryable=False, status=409
            )
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["uid"] = self.cluster.new_uid()
        self.cluster.objects[key] = stored
        self._leave("create_object")
        self._leave(f"create_object:{key[0]}")
        return self._view(stored)

    async def read_object(self, kind: str, namespace: str, name: str) -> ClusterObject | None:
        self._enter("read_object")
        body = self.cluster.objects.get((kind, namespace, name))
        return None if body is None else self._view(body)

    async def delete_object(self, kind: str, namespace: str, name: str, *, uid: str) -> bool:
        self._enter("delete_object")
        body = self.cluster.objects.get((kind, namespace, name))
        if body is None or body["metadata"]["uid"] != uid:
            return False
        del self.cluster.objects[(kind, namespace, name)]
        self._leave("delete_object")
        return True

    async def list_labelled(
        self, kinds: Sequence[str], *, selector: str, namespace: str | None = None
    ) -> list[ClusterObject]:
        self._enter("list_labelled")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        return [
            self._view(body)
            for (kind, ns, _), body in self.cluster.objects.items()
            if kind in kinds
            and (namespace is None or ns == namespace)
            and all((body["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]

    async def mint_token(self, *, namespace: str, service_account: str, seconds: int) -> str:
        self._enter("mint_token")
        if ("ServiceAccount", namespace, service_account) not in self.cluster.objects:
            raise NotFound(
                reason=Reason.CLUSTER_OBJECT_NOT_FOUND,
                message=f"{service_account} not found",
                retryable=False,
            )
        return f"token-for-{service_account}-{seconds}s"


@dataclass
class YieldingPort(FakePort):
    """A `FakePort` whose every call first yields to the event loop, as a real client's I/O does:
    passes running at once interleave between their calls instead of each running to its end. Calls
    take 1 to 3 turns of the loop (in a fixed rotation), so passes fall out of step with each other
    as they do against a server."""

    _turns: itertools.count[int] = field(default_factory=itertools.count)

    async def _io(self) -> None:
        for _ in range(1 + next(self._turns) % 3):
            await asyncio.sleep(0)

    async def get_request(self, namespace: str, name: str) -> StoredRequest | None:
        await self._io()
        return await super().get_request(namespace, name)

    async def read_cluster_role(self, name: str) -> ClusterRoleRead:
        await self._io()
        return await super().read_cluster_role(name)

    async def list_requests(self) -> list[StoredRequest]:
        await self._io()
        return await super().list_requests()

    async def patch_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None
    ) -> StoredRequest:
        await self._io()
        return await super().patch_request_status(namespace, name, status, resource_version=resource_version)

    async def update_finalizers(
        self, namespace: str, name: str, finalizers: Sequence[str], *, resource_version: str | None
    ) -> StoredRequest:
        await self._io()
        return await super().update_finalizers(namespace, name, finalizers, resource_version=resource_version)

    async def delete_request(self, namespace: str, name: str, *, uid: str) -> bool:
        await self._io()
        return await super().delete_request(namespace, name, uid=uid)

    async def get_policy(self, name: str) -> StoredPolicy | None:
        await self._io()
        return await super().get_policy(name)

    async def list_policies(self) -> list[StoredPolicy]:
        await self._io()
        return await super().list_policies()

    async def create_object(self, body: Mapping[str, Any]) -> ClusterObject:
        await self._io()
        return await super().create_object(body)

    async def read_object(self, kind: str, namespace: str, name: str) -> ClusterObject | None:
        await self._io()
        return await super().read_object(kind, namespace, name)

    async def delete_object(self, kind: str, namespace: str, name: str, *, uid: str) -> bool:
        await self._io()
        return await super().delete_object(kind, namespace, name, uid=uid)

    async def list_labelled(
        self, kinds: Sequence[str], *, selector: str, namespace: str | None = None
    ) -> list[ClusterObject]:
        await self._io()
        return await super().list_labelled(kinds, selector=selector, namespace=namespace)

    async def mint_token(self, *, namespace: str, service_account: str, seconds: int) -> str:
        await self._io()
        return await super().mint_token(namespace=namespace, service_account=service_account, seconds=seconds)


@dataclass
class FakeAudit:
    """The audit trail as the handlers see it, keeping records in a list."""

    events: list[AuditEvent] = field(default_factory=list)
    unavailable: bool = False  # record_before_grant refuses, as a sink that must accept is down
    yields: bool = False  # each record first yields to the event loop, as the trail's file I/O does

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def depth(self) -> int:
        return 0

    async def record_before_grant(self, event: AuditEvent) -> object:
        if self.yields:
            await asyncio.sleep(0)
        if self.unavailable:
            raise AuditUnavailable("the fake sink is down")
        self.events.append(event)
        return event

    async def record(self, event: AuditEvent) -> object:
        if self.yields:
            await asyncio.sleep(0)
        self.events.append(event)
        return event

    def types(self, request_uid: str) -> list[EventType]:
        return [event.type for event in self.events if event.request_uid == request_uid]


@dataclass(frozen=True)
class RecordedEvent:
    """One Event as posted: on which request, Normal or Warning, why, and what it said."""

    namespace: str
    name: str
    type: str
    reason: str
    message: str


@dataclass
class FakeEvents:
    """The EventRecorder as cert-manager's fake recorder (`pkg/controller/test/recorder.go`): every
    Event kept in order, for tests to assert by type and reason."""

    events: list[RecordedEvent] = field(default_factory=list)

    def post(self, body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
        meta = body.get("metadata") or {}
        self.events.append(
            RecordedEvent(
                namespace=meta.get("namespace") or "",
                name=meta.get("name") or "",
                type="Warning" if warning else "Normal",
                reason=reason,
                message=message,
            )
        )

    async def close(self) -> None:
        pass

    def of(self, name: str) -> list[tuple[str, str]]:
        """(type, reason) of each Event posted on the request `name`, in order."""
        return [(event.type, event.reason) for event in self.events if event.name == name]


class Crash(Exception):
    """Injected with `FakePort.fail`: the operator process died in the middle of a call."""


__all__ = ["Crash", "FakeAudit", "FakeCluster", "FakePort", "YieldingPort"]
