"""One open request per scope (issue 31 §1): the index of open requests and the duplicate rules.

An agent retries: a tool call that timed out is repeated, a plan that loops asks a hundred times.
A requester may have one open (not yet terminal) request per policy, namespace and role or rules;
another is a duplicate, refused with `AlreadyRequested` naming the open one and its phase.

Every replica keeps an `OpenRequests` index, fed by its own watch of AccessRequests (kopf's initial
list, then its events), so admission answers from memory without listing requests. That index may be
a moment behind (a request created through another replica, or before this replica's initial list
finished after a restart), so admission is the fast, usually-right answer and the reconciler is the
authoritative one: before its first decision on a request, the leader refuses it if another open
request of the same requester and scope was already decided, or comes first in the total order
(creationTimestamp, then name). Whichever two requests race, exactly one survives, on any leader,
after any failover: the rule reads only what the watch shows, never one replica's history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jitgrant.models.request import TERMINAL_PHASES, Phase

Scope = tuple[str, str, str]
Key = tuple[str, str]  # (namespace, name) of a request


@dataclass(frozen=True)
class OpenRequest:
    """What the index keeps of one open request."""

    namespace: str
    name: str
    requester: str
    scope: Scope
    phase: str | None  # None: filed, not decided yet
    request_key: str | None
    created: str  # creationTimestamp as the API server wrote it (RFC 3339, sorts as text)

    @property
    def order(self) -> tuple[str, str, str]:
        return (self.created, self.namespace, self.name)

    @property
    def shown_phase(self) -> str:
        return self.phase or Phase.PENDING.value


def scope_of(spec: Mapping[str, Any]) -> Scope:
    """Policy, namespace and what is asked for (the ClusterRole, or the inline rules canonically)."""
    cluster_role = spec.get("clusterRole")
    asked = (
        f"clusterRole={cluster_role}"
        if cluster_role
        else "rules=" + json.dumps(spec.get("rules") or [], sort_keys=True, separators=(",", ":"))
    )
    return (str(spec.get("policy") or ""), str(spec.get("namespace") or ""), asked)


def requester_of(spec: Mapping[str, Any]) -> str:
    stamp = spec.get("requester")
    return str(stamp.get("username") or "") if isinstance(stamp, Mapping) else ""


def open_request(body: Mapping[str, Any]) -> OpenRequest | None:
    """The index entry for a stored request, or None when it is not open (terminal, being deleted)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    phase = (body.get("status") or {}).get("phase")
    if meta.get("deletionTimestamp") or phase in {p.value for p in TERMINAL_PHASES}:
        return None
    requester = requester_of(spec)
    if not requester:
        return None
    key = spec.get("requestKey")
    return OpenRequest(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        requester=requester,
        scope=scope_of(spec),
        phase=str(phase) if phase else None,
        request_key=str(key) if key else None,
        created=str(meta.get("creationTimestamp") or ""),
    )


class OpenRequests:
    """Open requests by requester and scope, kept from the watch (every replica keeps its own)."""

    def __init__(self) -> None:
        self._by_name: dict[Key, OpenRequest] = {}
        self._by_scope: dict[tuple[str, Scope], dict[Key, OpenRequest]] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def observe(self, body: Mapping[str, Any]) -> None:
        """A watch event's object (ADDED, MODIFIED): index it, or drop it once it is no longer open."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        entry = open_request(body)
        if entry is None:
            self.forget(*key)
            return
        old = self._by_name.get(key)
        if old is not None and (old.requester, old.scope) != (entry.requester, entry.scope):
            self.forget(*key)  # a spec never changes once sealed; kept safe all the same
        self._by_name[key] = entry
        self._by_scope.setdefault((entry.requester, entry.scope), {})[key] = entry

    def forget(self, namespace: str, name: str) -> None:
        entry = self._by_name.pop((namespace, name), None)
        if entry is None:
            return
        bucket = self._by_scope.get((entry.requester, entry.scope))
        if bucket is not None:
            bucket.pop((namespace, name), None)
            if not bucket:
                del self._by_scope[(entry.requester, entry.scope)]

    def same_scope(self, requester: str, scope: Scope) -> Iterator[OpenRequest]:
        yield from (self._by_scope.get((requester, scope)) or {}).values()

    def existing_for(self, body: Mapping[str, Any]) -> OpenRequest | None:
        """At admission: an open request this new one duplicates (the earliest), or None."""
        spec, meta = body.get("spec") or {}, body.get("metadata") or {}
        own = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        found = [
            entry
            for entry in self.same_scope(requester_of(spec), scope_of(spec))
            if (entry.namespace, entry.name) != own
        ]
        return min(found, key=lambda entry: entry.order, default=None)

    def supersedes(self, body: Mapping[str, Any]) -> OpenRequest | None:
        """At the reconciler's first decision: the open request that keeps this one from going on.

        Another open request of the same requester and scope wins when it is already decided (it has a
        phase) or comes first in (creationTimestamp, namespace, name): of any set of racing duplicates
        exactly one is decided on, whatever order the leader sees them in.
        """
        mine = open_request(body)
        if mine is None:
            return None
        rivals = [
            entry
            for entry in self.same_scope(mine.requester, mine.scope)
            if (entry.namespace, entry.name) != (mine.namespace, mine.name)
            and (entry.phase is not None or entry.order < mine.order)
        ]
        return min(rivals, key=lambda entry: entry.order, default=None)


def already_requested_message(existing: OpenRequest, *, same_key: bool = False) -> str:
    """What the refused duplicate is told: the open request, its phase, and what to do."""
    ref = f"{existing.namespace}/{existing.name}"
    policy, namespace, _ = existing.scope
    why = (
        "this is a retry with the same requestKey"
        if same_key
        else f"one open request per policy, namespace and role: {policy} in {namespace}"
    )
    return (
        f"you already have {existing.name} {existing.shown_phase} for this scope ({why}); wait on "
        f"{ref} or release it before asking again"
    )
