"""One task that wakes the reconciler when a request is due, from a priority queue on due times.

It replaces a 1 s kopf timer per live object (at 10,000 live grants those saturated a core and a new
request waited 34 s): the watch feeds every event through `lifecycle.due`, which says when the
request next needs the reconciler (an Active grant: its `expiresAt`); nothing runs and no API call is
made until then. The reconciler's own answer (a pending time-out, a retry) is queued the same way.
A finished request waits here until its `finishedRetention` is over, then the reconciler records its
removal and deletes it. The watch lists every request when the operator starts, so requests already
past their retention are removed at start-up without a sweep of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.gate import ClusterGate
from jitgrant.lifecycle.due import due
from jitgrant.lifecycle.transitions import live_grant_step
from jitgrant.models import AccessRequest, GrantPolicySpec
from jitgrant.models.request import TERMINAL_PHASES
from jitgrant.models.vocabulary import parse_time
from jitgrant.policy import check_policy
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.driver import Reconciler
from jitgrant.reconcile.result import RETRY, RETRY_LADDER

log = logging.getLogger("jitgrant.scheduler")

Key = tuple[str, str]  # (namespace, name)
# Expired grants' RoleBindings deleted at once (a DELETE with a uid precondition each).
CUT_CONCURRENCY = 32
_ENDED = frozenset(phase.value for phase in TERMINAL_PHASES)
_UNSEEN = object()


class Scheduler:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 16,
        acting: Callable[[], bool] = lambda: True,
        retry_delays: tuple[float, ...] = RETRY_LADDER,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be 1 or more, got {concurrency}")
        self.runtime = runtime
        self.acting = acting
        self._retry_delays = retry_delays
        self._heap: list[tuple[datetime, int, Key]] = []
        self._due: dict[Key, datetime] = {}  # the live entry per key; heap entries not matching are stale
        self._attempts: dict[Key, int] = {}
        self._events: dict[
            Key, int
        ] = {}  # events observed per key: a newer one outranks a reconcile's answer
        self._running: set[Key] = set()
        # Events that arrived while a key's pass ran, as (uid, resourceVersion); None: not a write of
        # the request (a policy change). The echo of the pass's own write can come in before the
        # write's answer says which version it made: once the pass has ended, such an echo is known
        # for what it is and does not run the request again from its stale body (a 409, a read).
        self._during: dict[Key, list[tuple[str, str] | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        # An Active grant's expiresAt and recorded objects, from its last event: when it comes due,
        # its RoleBindings in the operator's own cluster are deleted at once, ahead of the reconcile
        # pass, which finds them gone and records the expiry. Access ends on time even when many
        # grants end in the same second and their passes queue for a slot.
        self._expiring: dict[Key, tuple[datetime, list[Mapping[str, Any]]]] = {}
        self._cuts = asyncio.Semaphore(CUT_CONCURRENCY)
        # The cuts' own queue, on expiresAt: a cut never waits for its request's pass entry, which
        # an event can move (to now, for a pass that then waits behind a backlog of activations).
        self._cut_heap: list[tuple[datetime, int, Key]] = []
        self._cutting: dict[Key, asyncio.Task[None]] = {}
        # The body of the latest event of a request due now: its pass starts from it instead of a
        # GET (as fresh as one made when the event arrived; every write it leads to is made with its
        # resourceVersion, so a stale body costs a 409 and a read, never a wrong write).
        self._bodies: dict[Key, Mapping[str, Any]] = {}
        self.reconciles = 0  # reconciles this scheduler started (the bench reads it)
        # The policy each live (not ended) request names, and each policy's last seen generation: a
        # change to a policy's spec, or its deletion, makes every live request under it due now, so
        # the lifecycle holds it against the policy as it is (continuous authorization).
        self._policy_of: dict[Key, str] = {}
        self._generations: dict[str, int | None] = {}
        # Each policy as last seen (None: it does not parse or lint clean), and the Active requests
        # seen before their policy was: the watch's listings at start-up are checked against each
        # other without an API call, so a policy narrowed while no replica ran ends its grants at
        # once instead of at their expiry.
        self._policy_specs: dict[str, GrantPolicySpec | None] = {}
        self._unchecked: dict[Key, Mapping[str, Any]] = {}
        runtime.on_reachable = self._retry_now

    def __len__(self) -> int:
        return len(self._due)

    def next_due(self) -> datetime | None:
        self._drop_stale()
        heads = [heap[0][0] for heap in (self._heap, self._cut_heap) if heap]
        return min(heads) if heads else None

    # ---- feeding -----------------------------------------------------------------------------

    def observe(
        self,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        annotations: Mapping[str, str],
        *,
        body: Mapping[str, Any] | None = None,
        own: bool = False,
    ) -> datetime | None:
        """A watch event: queue the request at its due time (an ended one: when its retention is
        over; None: never again, forget it).

        `own`: the echo of a write this process made. The pass that wrote it queued the request's
        next look itself, so the echo triggers nothing; what it says is still observed (an Active
        grant's bindings, cut the moment it expires; the policy it is held against)."""
        key = (namespace, name)
        if own:
            self._observe_grant(key, status, body)
            return None
        self._attempts.pop(key, None)
        self._events[key] = self._events.get(key, 0) + 1
        if key in self._during:
            meta = (body or {}).get("metadata") or {}
            uid, version = meta.get("uid"), meta.get("resourceVersion")
            self._during[key].append((uid, version) if uid and version else None)
        retention = self.runtime.settings.finished_retention
        when = due(status, annotations, self.runtime.clock(), retention=retention)
        self._bodies.pop(key, None)
        if body is not None and when is not None and when <= self.runtime.clock():
            self._bodies[key] = body
        policy = self._observe_grant(key, status, body)
        if when is None:
            self.forget(namespace, name)
            return when
        self.schedule(key, when)
        self._unchecked.pop(key, None)
        if body is not None and status.get("phase") == "Active" and when > self.runtime.clock():
            if isinstance(policy, str) and policy in self._policy_specs:
                return self._hold_against_policy(key, body, policy) or when
            self._unchecked[key] = body
        return when

    def _observe_grant(
        self, key: Key, status: Mapping[str, Any], body: Mapping[str, Any] | None
    ) -> str | None:
        """What an event says about the grant, whoever wrote it: the policy a live request is held
        against, and an Active grant's expiresAt and objects. Returns the policy named."""
        self._expiring.pop(key, None)
        policy = ((body or {}).get("spec") or {}).get("policy")
        if isinstance(policy, str) and status.get("phase") not in _ENDED:
            self._policy_of[key] = policy
        else:
            self._policy_of.pop(key, None)
        objects = (status.get("grant") or {}).get("objects") or []
        if status.get("phase") == "Active" and objects and isinstance(status.get("expiresAt"), str):
            with contextlib.suppress(ValueError):
                expires = parse_time(status["expiresAt"])
                self._expiring[key] = (expires, list(objects))
                heapq.heappush(self._cut_heap, (expires, next(self._order), key))
                if self._cut_heap[0][2] == key:
                    self._wake.set()
        return policy if isinstance(policy, str) else None

    def _hold_against_policy(self, key: Key, body: Mapping[str, Any], policy: str) -> datetime | None:
        """The lifecycle's live check of an Active grant against its policy as last seen, from the
        bodies at hand: due now (returned) when it would end or shorten it."""
        try:
            request = AccessRequest.from_object(body)
        except ValidationError:
            return None  # the reconciler fails it with the field, when it is next due
        settings = self.runtime.settings
        step = live_grant_step(
            request=request,
            policy=self._policy_specs.get(policy),
            now=self.runtime.clock(),
            inline_rules_enabled=settings.inline_rules_enabled,
            operator_namespace=settings.operator_namespace,
        )
        spec = self._policy_specs.get(policy)
        # An idle timer lives in the audit log, not in memory: a grant under a policy with idleTimeout
        # is looked at now (after a restart too), and the pass says when to look again.
        if step is None and (spec is None or spec.idle_timeout is None):
            return None
        now = self.runtime.clock()
        self.schedule(key, now)
        return now

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._due.pop(key, None)
        self._attempts.pop(key, None)
        self._events.pop(key, None)
        self._expiring.pop(key, None)
        self._bodies.pop(key, None)
        self._policy_of.pop(key, None)
        self._unchecked.pop(key, None)

    def policy_seen(
        self,
        name: str,
        *,
        generation: int | None,
        event: str | None,
        spec: Mapping[str, Any] | None = None,
    ) -> int:
        """A GrantPolicy watch event: when its spec changed (a new generation), it was created again
        or deleted, every live request under it is due now. The initial listing (`event` None) holds
        the Active grants seen so far against it instead. Returns how many requests were queued."""
        if event == "DELETED":
            self._generations.pop(name, None)
            self._policy_specs.pop(name, None)
            return self.policy_changed(name)
        self._policy_specs[name] = check_policy(spec).spec if spec is not None else None
        before = self._generations.get(name, _UNSEEN)
        self._generations[name] = generation
        if event is None:
            waiting = [key for key, body in self._unchecked.items() if self._policy_of.get(key) == name]
            due = [key for key in waiting if self._hold_against_policy(key, self._unchecked.pop(key), name)]
            return len(due)
        if before == generation:
            return 0  # a status write (the generation moves only with the spec)
        return self.policy_changed(name)

    def policy_changed(self, name: str) -> int:
        """Every live request naming policy `name` is reconciled now."""
        now = self.runtime.clock()
        keys = [key for key, policy in self._policy_of.items() if policy == name and key in self._due]
        for key in keys:
            # Counted as an event: a pass running now (that may have read the old policy) is queued
            # again when it ends instead of at the time it answers.
            self._events[key] = self._events.get(key, 0) + 1
            if key in self._during:
                self._during[key].append(None)
            self.schedule(key, now)
        if keys:
            log.info("GrantPolicy %s changed: %d live request(s) under it re-checked", name, len(keys))
        return len(keys)

    def schedule(self, key: Key, when: datetime) -> None:
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        if self._heap[0][2] == key:
            self._wake.set()  # earlier than what the loop sleeps for

    def wake(self) -> None:
        """Look at the queue now (this replica just became the leader)."""
        self._wake.set()

    # ---- reconciling -------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile one request now and queue its next look."""
        key = (namespace, name)
        seen = self._events.get(key)
        self._running.add(key)
        self._during[key] = []
        self.reconciles += 1
        try:
            result = await Reconciler(self.runtime).reconcile(
                namespace, name, body=self._bodies.pop(key, None)
            )
        except ClusterAccessError as exc:
            # A cluster that does not answer: its change of state is logged once (Runtime), not a
            # traceback per retry of every request waiting on it.
            self.runtime.metrics.reconcile_error(handler="scheduler")
            log.debug("reconciling %s/%s failed: %s; will retry", namespace, name, exc)
            result = RETRY
        except Exception as exc:
            self.runtime.metrics.reconcile_error(handler="scheduler")
            if self.acting():
                log.exception("reconciling %s/%s failed; will retry", namespace, name)
            else:
                log.info("%s/%s not reconciled: %s", namespace, name, exc)
            result = RETRY  # an exception means backoff
        finally:
            self._running.discard(key)
            during = self._during.pop(key, [])
        if key not in self._due:
            return  # an event said meanwhile that it ended
        if during and all(d is not None and self.runtime.is_own_echo(*d) for d in during):
            # Only this pass's own writes came back: nothing new; its answer says when to look again.
            self._bodies.pop(key, None)
            self._due.pop(key, None)
        elif self._events.get(key) != seen:
            # An event during the reconcile queued it at the time it says; the loop skipped that
            # entry while the reconcile ran, so it goes back on the heap.
            when = self._due[key]
            heapq.heappush(self._heap, (when, next(self._order), key))
            self._wake.set()
            return
        if result.done:
            self.forget(namespace, name)  # never again, until an event says otherwise
            return
        wake = result.requeue_at
        if wake is None:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            delay = self._retry_delays[min(attempt, len(self._retry_delays) - 1)]
            wake = self.runtime.clock() + timedelta(seconds=delay)
        self.schedule(key, wake)

    def _retry_now(self, keys: set[Key]) -> None:
        """A cluster answered again: the requests that waited on it go now, not after their backoff."""
        now = self.runtime.clock()
        for key in keys:
            if key in self._due and key not in self._running:
                self._attempts.pop(key, None)
                self.schedule(key, min(now, self._due[key]))

    async def _reconcile_in_slot(self, key: Key) -> None:
        cutting = self._cutting.get(key)
        if cutting is not None:
            # Its pass waits for the access to be cut: with many due at once the passes would
            # otherwise compete with the cuts for the API server.
            await asyncio.gather(cutting, return_exceptions=True)
        gate = self._gate_of(key)
        async with gate.pass_slot() if gate is not None else self._slots:
            if self.acting() and not self.runtime.stopping:
                await self.reconcile(*key)

    def _gate_of(self, key: Key) -> ClusterGate | None:
        """The target cluster's gate when the request's policy names one: its passes wait for that
        cluster's own slots, so passes stuck on a dark cluster never take the shared ones."""
        targets = self.runtime.targets
        spec = self.runtime.watched_policies.get(self._policy_of.get(key, ""))
        return targets.gate(spec.target) if targets is not None and spec is not None else None

    def _drop_stale(self) -> None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        heap = self._cut_heap
        while heap and (self._expiring.get(heap[0][2]) or (None,))[0] != heap[0][0]:
            heapq.heappop(heap)

    def _cut_expired(self, key: Key, now: datetime) -> None:
        expiring = self._expiring.get(key)
        if expiring is None or expiring[0] > now:
            return
        del self._expiring[key]
        own = self.runtime.own.name
        bindings = [
            (str(ref["namespace"]), str(ref["name"]), str(ref["uid"]))
            for ref in expiring[1]
            if ref.get("kind") == "RoleBinding" and ref.get("cluster") == own and ref.get("uid")
        ]
        if bindings:
            task = asyncio.create_task(self._cut(key, bindings))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._cutting[key] = task
            task.add_done_callback(lambda _: self._cutting.pop(key, None))

    async def _cut(self, key: Key, bindings: list[tuple[str, str, str]]) -> None:
        async with self._cuts:
            for namespace, name, uid in bindings:
                if not self.acting() or self.runtime.stopping:
                    return
                try:
                    # The uid precondition deletes exactly the object the grant recorded.
                    await self.runtime.own.delete_object("RoleBinding", namespace, name, uid=uid)
                except ClusterAccessError as exc:  # the pass removes it (and retries) itself
                    log.debug("early removal of %s/%s for %s/%s failed: %s", namespace, name, *key, exc)

    def take_due(self, now: datetime) -> list[Key]:
        """Take what is due at `now` off the queue (the caller runs their passes); an expired grant's
        RoleBindings are cut at once, ahead of its pass."""
        keys: list[Key] = []
        while self._cut_heap and self._cut_heap[0][0] <= now:
            self._cut_expired(heapq.heappop(self._cut_heap)[2], now)
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return keys
            _, _, key = heapq.heappop(self._heap)
            self._cut_expired(key, now)
            if key in self._running:
                continue  # its running reconcile queues the next look itself
            del self._due[key]
            keys.append(key)

    def start_due(self, now: datetime) -> list[Key]:
        """Take what is due at `now` and start each pass, in its slot (no more than `concurrency`)."""
        keys = self.take_due(now)
        for key in keys:
            # Queued again by the reconcile itself; a key without a slot waits its turn.
            self._due[key] = now
            task = asyncio.create_task(self._reconcile_in_slot(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return keys

    async def settle(self) -> None:
        """Wait for every cut and pass in flight (and those they start) to end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def tick(self, now: datetime) -> list[Key]:
        """One turn of `run` at `now`, to its end: the cuts, then the passes of what is due. Tests and
        tools drive virtual time with it; returns the requests reconciled."""
        keys = self.start_due(now)
        await self.settle()
        return keys

    async def run(self) -> None:
        """Until cancelled: sleep until the earliest due time (or a wake), reconcile what is due."""
        try:
            while True:
                self._wake.clear()
                timeout: float | None = None
                if self.acting() and not self.runtime.stopping:
                    self.start_due(self.runtime.clock())
                    earliest = self.next_due()
                    if earliest is not None:
                        timeout = max(0.0, (earliest - self.runtime.clock()).total_seconds())
                else:
                    timeout = 1.0  # not the leader: check again (the election also wakes us)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
