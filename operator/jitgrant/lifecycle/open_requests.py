"""One open request per scope (the invariant one-open-request-per-scope): the index of open requests and the
duplicate rules.

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
from datetime import datetime, timedelta
from typing import Any

from jitgrant.models.policy import RequestLimits
from jitgrant.models.request import TERMINAL_PHASES, Phase
from jitgrant.models.vocabulary import format_time, parse_time

HOUR = timedelta(hours=1)

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
    expires_at: str | None = None  # status.expiresAt of an active grant: when its slot frees

    @property
    def policy(self) -> str:
        return self.scope[0]

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
    if spec.get("extends"):
        # An extension is its own scope (one open extension per grant), never a duplicate of its grant.
        asked = f"extends={spec['extends']}"
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
        expires_at=(body.get("status") or {}).get("expiresAt"),
    )


def _created(body: Mapping[str, Any]) -> datetime | None:
    text = (body.get("metadata") or {}).get("creationTimestamp")
    try:
        return parse_time(str(text)) if text else None
    except ValueError:
        return None


class OpenRequests:
    """Open requests by requester and scope, kept from the watch (every replica keeps its own)."""

    def __init__(self) -> None:
        self._by_name: dict[Key, OpenRequest] = {}
        self._by_scope: dict[tuple[str, Scope], dict[Key, OpenRequest]] = {}
        self._by_policy: dict[tuple[str, str], dict[Key, OpenRequest]] = {}
        # When each request of a requester under a policy was filed, open or not, for the hourly
        # rate; entries older than an hour are dropped as they are read.
        self._filed: dict[tuple[str, str], dict[Key, datetime]] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def observe(self, body: Mapping[str, Any]) -> None:
        """A watch event's object (ADDED, MODIFIED): index it, or drop it once it is no longer open."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        spec, created = body.get("spec") or {}, _created(body)
        requester = requester_of(spec)
        if requester and created is not None:
            self._filed.setdefault((requester, str(spec.get("policy") or "")), {})[key] = created
        entry = open_request(body)
        if entry is None:
            self.forget(*key)
            return
        old = self._by_name.get(key)
        if old is not None and old.phase is not None and entry.phase is None:
            return  # an event older than the leader's claim: a phase never goes back to none
        if old is not None and (old.requester, old.scope) != (entry.requester, entry.scope):
            self.forget(*key)  # a spec never changes once sealed; kept safe all the same
        self._by_name[key] = entry
        self._by_scope.setdefault((entry.requester, entry.scope), {})[key] = entry
        self._by_policy.setdefault((entry.requester, entry.policy), {})[key] = entry

    def claimed(self, namespace: str, name: str) -> bool:
        entry = self._by_name.get((namespace, name))
        return entry is not None and entry.phase is not None

    def claim(self, body: Mapping[str, Any]) -> None:
        """The leader decided on this new request: it counts as decided before its status is written."""
        status = {**(body.get("status") or {}), "phase": Phase.PENDING.value}
        self.observe({**body, "status": status})

    def forget(self, namespace: str, name: str) -> None:
        entry = self._by_name.pop((namespace, name), None)
        if entry is None:
            return
        by_scope = self._by_scope.get((entry.requester, entry.scope)) or {}
        by_scope.pop((namespace, name), None)
        if not by_scope:
            self._by_scope.pop((entry.requester, entry.scope), None)
        by_policy = self._by_policy.get((entry.requester, entry.policy)) or {}
        by_policy.pop((namespace, name), None)
        if not by_policy:
            self._by_policy.pop((entry.requester, entry.policy), None)

    def open_under(self, requester: str, policy: str) -> list[OpenRequest]:
        return list((self._by_policy.get((requester, policy)) or {}).values())

    def filed_between(self, requester: str, policy: str, start: datetime, end: datetime) -> list[datetime]:
        """When this requester's requests under the policy were filed in [start, end), oldest first."""
        bucket = self._filed.get((requester, policy)) or {}
        for key in [key for key, at in bucket.items() if at < end - HOUR - HOUR]:
            del bucket[key]  # older than any window still asked about
        return sorted(at for at in bucket.values() if start <= at < end)

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
        if mine is None or self.claimed(mine.namespace, mine.name):
            return None  # already decided on by this leader: rivals checked since saw it and lost
        rivals = [
            entry
            for entry in self.same_scope(mine.requester, mine.scope)
            if (entry.namespace, entry.name) != (mine.namespace, mine.name)
            and (entry.phase is not None or entry.order < mine.order)
        ]
        # Named in the denial: one already decided on if there is one (it stays), else the earliest.
        return min(rivals, key=lambda entry: (entry.phase is None, entry.order), default=None)


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


def limit_refusal(
    index: OpenRequests,
    body: Mapping[str, Any],
    *,
    limits: RequestLimits,
    now: datetime,
    at_reconcile: bool = False,
) -> str | None:
    """Why this request is past the policy's spec.limits, or None (identity-and-approvals.md, "Guardrails").

    At admission it counts what the index holds. At the reconciler's first decision (closing the races
    admission missed), only requests that come before this one count: those already decided or earlier
    in (creationTimestamp, namespace, name), and those filed in the hour before it was, so the answer is
    the same on every replica.
    """
    spec, meta = body.get("spec") or {}, body.get("metadata") or {}
    own = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    requester, policy = requester_of(spec), str(spec.get("policy") or "")
    mine = open_request(body)
    if at_reconcile and index.claimed(*own):
        return None  # decided on already (a pass evaluated again before its write landed)
    if limits.max_open_per_requester is not None:
        others = [e for e in index.open_under(requester, policy) if (e.namespace, e.name) != own]
        if at_reconcile and mine is not None:
            others = [e for e in others if e.phase is not None or e.order < mine.order]
        if len(others) >= limits.max_open_per_requester:
            ends = sorted(e.expires_at for e in others if e.expires_at)
            frees = f"at {ends[0]}, when {_ending(others, ends[0])} ends" if ends else "when one of them ends"
            names = ", ".join(f"{e.name} {e.shown_phase}" for e in sorted(others, key=lambda e: e.order)[:5])
            return (
                f"policy {policy} allows {limits.max_open_per_requester} open request(s) per requester "
                f"(spec.limits.maxOpenPerRequester) and you have {len(others)} ({names}); the next "
                f"slot frees {frees}, or release one"
            )
    if limits.max_requests_per_hour is not None:
        end = (_created(body) if at_reconcile else None) or now
        filed = index.filed_between(requester, policy, end - HOUR, end)  # not itself: `end` is excluded
        if len(filed) >= limits.max_requests_per_hour:
            next_slot = filed[len(filed) - limits.max_requests_per_hour] + HOUR
            return (
                f"policy {policy} allows {limits.max_requests_per_hour} request(s) per hour per requester "
                f"(spec.limits.maxRequestsPerHour) and you filed {len(filed)} in the last hour; the next "
                f"slot frees at {format_time(next_slot)}"
            )
    return None


def _ending(others: list[OpenRequest], at: str) -> str:
    return next(e.name for e in others if e.expires_at == at)


class RefusalTally:
    """Admission refusals to audit: one record per requester per minute, carrying how many refusals
    it stands for, so a looping agent cannot fill the trail (each replica keeps its own)."""

    def __init__(self, every: timedelta = timedelta(minutes=1), *, keep: int = 10_000) -> None:
        self.every, self.keep = every, keep
        self._since: dict[str, tuple[datetime, int]] = {}

    def note(self, requester: str, now: datetime) -> int | None:
        """Count a refusal; the number of refusals to record now, or None while the minute runs."""
        since, count = self._since.get(requester, (None, 0))
        count += 1
        if since is None or now - since >= self.every:
            if len(self._since) >= self.keep:
                self._since = {k: v for k, v in self._since.items() if now - v[0] < self.every}
            self._since[requester] = (now, 0)
            return count
        self._since[requester] = (since, count)
        return None
