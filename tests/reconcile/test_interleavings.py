"""Every interleaving of create, approve, revoke, delete, expiry, a 409 on a status write, a crash
mid-issue and an operator restart, checked after each step against the grant-record invariants
(docs/architecture.md, "Invariants"):

- **No orphaned access**: no object the operator made outlives its request's terminal phase; here,
  where every removal is synchronous, not even by one reconcile.
- **Status tells the truth**: every object that exists for a live request is named in its
  `status.grant`, so status never says "no grant" while a binding exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jitgrant.clusters.errors import ClusterAccessError, Conflict
from jitgrant.models.vocabulary import REQUEST_UID_LABEL, Reason
from jitgrant.reactor.sweep import sweep_all
from jitgrant.reconcile.driver import Reconciler
from jitgrant_testing.fakeport import Crash

from .conftest import NS, World

NAMES = st.sampled_from(["a", "b"])
TERMINAL = {"Expired", "Revoked", "Denied", "TimedOut", "Failed"}


def _conflict() -> Conflict:
    return Conflict(reason=Reason.CLUSTER_CONFLICT, message="injected 409", retryable=False, status=409)


def _crash() -> None:
    raise Crash("the operator died mid-call")


class GrantLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.loop = asyncio.new_event_loop()
        self.deleting: set[str] = set()

    def teardown(self) -> None:
        self.loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, object]) -> None:
        # kopf logs a failed pass; the scheduler or the next event tries again.
        with contextlib.suppress(ClusterAccessError, Crash):
            self.loop.run_until_complete(coroutine)

    def _exists(self, name: str) -> bool:
        return (NS, name) in self.world.cluster.requests

    @rule(name=NAMES, policy=st.sampled_from(["auto", "prod"]), minutes=st.sampled_from([1, 10]))
    def create(self, name: str, policy: str, minutes: int) -> None:
        if not self._exists(name):
            self.world.file(name, policy=policy, duration=f"{minutes}m")

    @rule(name=NAMES)
    def approve(self, name: str) -> None:
        if self._exists(name) and name not in self.deleting:
            self.world.approve(name)

    @rule(name=NAMES)
    def revoke(self, name: str) -> None:
        if self._exists(name) and name not in self.deleting:
            self.world.revoke(name)

    @rule(name=NAMES)
    def revoke_while_issuing(self, name: str) -> None:
        """A revoke that lands right after the next binding is created, before status says so."""
        if self._exists(name):
            self.world.port.after("create_object:RoleBinding", lambda: self.revoke(name))

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        if self._exists(name) and name not in self.deleting:
            self.deleting.add(name)
            self.world.cluster.mark_deleted(NS, name)

    @precondition(lambda self: bool(self.deleting))
    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        """kopf's delete handler: the finalizer is released only once the revocation succeeded."""
        name = data.draw(st.sampled_from(sorted(self.deleting)))
        body = self.world.cluster.requests[(NS, name)]
        try:
            self.loop.run_until_complete(Reconciler(self.world.runtime).revoke_for_deletion(body))
        except (ClusterAccessError, Crash):
            return
        self.world.cluster.remove(NS, name)
        self.deleting.discard(name)

    @rule(seconds=st.sampled_from([1, 30, 61, 400, 700]))
    def time_passes(self, seconds: int) -> None:
        self.world.clock.advance(seconds)

    @rule()
    def next_status_write_conflicts(self) -> None:
        self.world.port.fail("patch_request_status", _conflict())

    @rule(name=NAMES)
    def someone_writes_right_after_the_next_read(self, name: str) -> None:
        """kopf's bookkeeping (or an approver) updates the request between a read and our write."""

        def touch() -> None:
            if self._exists(name):
                self.world.cluster.annotate(NS, name, {"touched": "1"})

        self.world.port.after("get_request", touch)

    @rule(kind=st.sampled_from(["create_object:RoleBinding", "patch_request_status", "delete_object"]))
    def crash_right_after(self, kind: str) -> None:
        self.world.port.after(kind, _crash)

    @rule()
    def restart(self) -> None:
        self.world.restart()

    @rule(name=NAMES)
    def reconcile(self, name: str) -> None:
        self._run(self.world.reconcile(name))

    @rule()
    def sweep(self) -> None:
        self._run(sweep_all(self.world.runtime))

    @invariant()
    def no_object_outlives_its_request(self) -> None:
        for (kind, namespace, name), body in self.world.cluster.objects.items():
            owner_uid = body["metadata"]["labels"][REQUEST_UID_LABEL]
            owner = next(
                (r for r in self.world.cluster.requests.values() if r["metadata"]["uid"] == owner_uid), None
            )
            assert owner is not None, f"{kind} {namespace}/{name} outlived its deleted request"
            status = owner.get("status") or {}
            assert status.get("phase") not in TERMINAL, (
                f"{kind} {namespace}/{name} exists although its request is {status.get('phase')}"
            )
            recorded = {
                (o["kind"], o["namespace"], o["name"]) for o in (status.get("grant") or {}).get("objects", ())
            }
            assert (kind, namespace, name) in recorded, f"status does not name {kind} {namespace}/{name}"


GrantLifecycle.TestCase.settings = settings(
    # Short runs find these races: the field report's needs four steps (create, a revoke that lands
    # mid-issue, reconcile, reconcile). 300 runs of 20 steps take ~20 s on one core.
    max_examples=300,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestGrantLifecycle = GrantLifecycle.TestCase
