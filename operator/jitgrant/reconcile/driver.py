"""One pass over one AccessRequest: read it, decide the next step (pure, `lifecycle.next_step`), carry
it out, and again until nothing is due now; it answers a frozen `PassResult`. The only place that turns
a Step into effects (through `effects`: one status writer, one transition recorder).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from jitgrant.clusters.errors import Conflict
from jitgrant.clusters.port import StoredRequest
from jitgrant.lifecycle import Action, Step
from jitgrant.models import (
    AccessRequest,
    GrantPolicySpec,
    Phase,
)
from jitgrant.models.vocabulary import (
    FINALIZER,
)
from jitgrant.reconcile.decide import decide
from jitgrant.reconcile.decisions import record_approvals, shorten, transition
from jitgrant.reconcile.effects import Pass, post_event
from jitgrant.reconcile.ending import end_grant, revoke_for_deletion
from jitgrant.reconcile.extension import extension_pass
from jitgrant.reconcile.issue import activate
from jitgrant.reconcile.ports import Engine
from jitgrant.reconcile.result import RETRY, PassResult
from jitgrant.reconcile.retention import finished

log = logging.getLogger("jitgrant.reconcile")


# An approval reaches Active in the same pass: Pending -> Approved -> Active needs three steps; the
# rest leaves room to decide again after a status write that lost to a concurrent change.
_MAX_STEPS_PER_PASS = 6


async def run_pass(p: Pass, namespace: str, name: str, body: Mapping[str, Any] | None) -> PassResult:
    async with p.engine.lock_for(f"{namespace}/{name}"):
        if body is not None:
            p.latest = StoredRequest(body)
        try:
            result = await steps(p, namespace, name)
            if p.deferred is not None:
                base, request, status = p.deferred
                p.deferred = None
                try:
                    await p.write_status(base, request, status)
                except Conflict:  # changed meanwhile: its event brings it back
                    p.held_note = None
        finally:
            if p.held_note is not None and p.deferred is None:
                # Its fields were written (with a later write of the pass) and no Event of the
                # pass carried it: it goes out alone.
                held, note = p.held_note
                post_event(p, held, warning=note.warning, reason=note.reason, message=note.message)
        return result


async def steps(p: Pass, namespace: str, name: str) -> PassResult:
    for _ in range(_MAX_STEPS_PER_PASS):
        if p.engine.stopping:
            return RETRY
        stored, p.latest = p.latest, None
        if stored is None:
            stored = await p.engine.own.get_request(namespace, name)
        if stored is None or stored.deleting:
            return RETRY  # deletion is the delete handler's business
        if stored.phase is not None and stored.phase.terminal:
            return await finished(p, stored)
        if stored.spec.get("extends"):
            return await extension_pass(p, stored)  # never Active: none of a grant's steps apply
        step, request, policy = await decide(p, stored)
        if step.action is Action.WAIT:
            return PassResult(requeue_at=step.wake_at)
        if step.action is Action.NONE or request is None:
            return RETRY
        if step.action is Action.ACTIVATE and FINALIZER not in stored.finalizers:
            # Without the finalizer a deletion could remove the request before its grant:
            # access is issued only once deleting the request is guaranteed to revoke it.
            # Added here too, not only by the event handler: its write may have failed (the
            # webhooks down at start-up), and nothing else would add it.
            with contextlib.suppress(Conflict):
                await p.engine.own.update_finalizers(
                    namespace,
                    name,
                    [*stored.finalizers, FINALIZER],
                    resource_version=stored.resource_version,
                )
            continue
        try:
            p.retry_at = None
            await carry_out(p, step, stored=stored, request=request, policy=policy)
        except Conflict:
            # Someone changed the request since we read it (a revoke landing mid-issue, an
            # approval): what was made is in the grant record, so decide again on a fresh
            # read now instead of waiting for the next event.
            log.debug("%s/%s changed while being reconciled; reading it again", namespace, name)
            p.latest = p.deferred = p.held_note = None
            continue
        if p.retry_at is not None:
            return PassResult(requeue_at=p.retry_at)  # waiting on a target cluster
        active = p.latest is not None and p.latest.phase is Phase.ACTIVE
        if step.action is Action.ACTIVATE and not active:
            # Waiting on the target cluster (or failed): the scheduler retries after its
            # backoff. Once Active, the next turn says when it expires.
            return RETRY
    return RETRY


async def carry_out(
    p: Pass, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
) -> None:
    if step.action is Action.ACTIVATE:
        assert policy is not None and step.duration is not None  # next_step guarantees both
        await activate(p, step, stored=stored, request=request, policy=policy)
    elif step.action in (Action.EXPIRE, Action.REVOKE):
        await end_grant(p, step, stored=stored, request=request, policy=policy, policy_read=True)
    elif step.action is Action.RECORD_APPROVALS:
        await record_approvals(p, step, stored=stored, request=request, policy=policy)
    elif step.action is Action.SHORTEN:
        await shorten(p, step, stored=stored, request=request, policy=policy)
    else:
        await transition(p, step, stored=stored, request=request, policy=policy)


class Reconciler:
    """Moves one AccessRequest through its lifecycle, one verified step at a time. Holds nothing of
    a pass: each call makes its own `Pass`, so passes may run at once on one Reconciler."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def reconcile(
        self, namespace: str, name: str, *, body: Mapping[str, Any] | None = None
    ) -> PassResult:
        """Run every step that is due now; return when the request next needs attention. `body`:
        the request as a watch event just delivered it, to start from instead of a read."""
        return await run_pass(Pass(self.engine), namespace, name, body)

    async def revoke_for_deletion(self, body: Mapping[str, Any]) -> None:
        """The finalizer's work: a deleted request loses its access before it disappears."""
        await revoke_for_deletion(Pass(self.engine), body)
