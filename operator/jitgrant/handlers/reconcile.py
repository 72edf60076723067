"""Carrying out the lifecycle's decisions against the cluster: the only place that turns a Step into
status patches, RBAC objects, audit records, Kubernetes Events and metrics.

The grant is written ahead: its plan (every object's cluster, kind, namespace and name) goes into
`status.grant` before the first object exists, and every removal works from that record. So a status
write that fails after an object was created (a revoke landing mid-issue makes it a 409) can never
orphan the object, and status never says "no grant" while a binding exists (see "Grant record" in
docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import kopf
from kopf._core.engines import posting  # private, but kopf is pinned to 1.45.x
from pydantic import ValidationError

from jitgrant.approvals.counting import ApprovalTally, tally
from jitgrant.approvals.receipts import parse_recorded
from jitgrant.audit.records import AuditEvent, EventType, transition_id
from jitgrant.audit.trail import AuditUnavailable
from jitgrant.clusters import grant_objects
from jitgrant.clusters.errors import ClusterAccessError, Conflict, Forbidden, NotFound, Refused
from jitgrant.clusters.grant_objects import ForeignObjectError
from jitgrant.clusters.port import ClusterPort, StoredRequest
from jitgrant.grants.delivery import kubeconfig_reader, kubeconfig_secret, token_seconds
from jitgrant.grants.kubeconfig import kubeconfig_yaml, scoped_kubeconfig
from jitgrant.grants.objects import GrantOwner
from jitgrant.grants.plan import GrantPlan, plan_grant
from jitgrant.handlers.audit_events import audit_event
from jitgrant.handlers.policy_status import (
    grant_refusal,
    idle_check,
    invalid_policy_step,
    load_policy,
    scoped_to_namespace,
)
from jitgrant.handlers.revoker import named_deleter, named_revoker
from jitgrant.handlers.runtime import Runtime
from jitgrant.identity.stamp import verify_requester_seal
from jitgrant.lifecycle import Action, Step, granted_condition, next_step
from jitgrant.lifecycle.open_requests import OpenRequest, limit_refusal
from jitgrant.lifecycle.retention import Disposal, Removal, describe_retention, removal
from jitgrant.models import (
    AccessRequest,
    AccessRequestStatus,
    ApprovalEntry,
    Condition,
    GrantObjectRef,
    GrantPolicySpec,
    GrantRef,
    Phase,
    TargetType,
    cluster_name_of,
)
from jitgrant.models.text import log_field
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    CREATED_BY_EXTRA,
    FINALIZER,
    REMOVAL_OVERDUE_CONDITION,
    REQUESTER_SEAL_ANNOTATION,
    Reason,
    format_time,
)

log = logging.getLogger("jitgrant.reconcile")

# An approval reaches Active in the same pass: Pending -> Approved -> Active needs three steps; the
# rest leaves room to decide again after a status write that lost to a concurrent change.
_MAX_STEPS_PER_PASS = 6


@dataclass(frozen=True)
class PassResult:
    """What a pass answers the scheduler, after controller-runtime's `reconcile.Result`: look again
    at `requeue_at`; `done`: never again until an event says otherwise (a finished request kept
    forever). Neither: the scheduler retries with its backoff, as it does when a pass raises."""

    requeue_at: datetime | None = None
    done: bool = False


RETRY = PassResult()
DONE = PassResult(done=True)

_QUIET_REASONS = frozenset({Reason.ALREADY_REQUESTED, Reason.LIMIT_REACHED})


def _status(**fields: Any) -> dict[str, Any]:
    """A status patch built from the model, so only fields the model knows are ever written."""
    return AccessRequestStatus(**fields).model_dump(mode="json", by_alias=True, exclude_unset=True)


def remember_kopf_events(runtime: Runtime) -> None:
    """Called in a kopf handler: keep kopf's Event queue for passes run outside kopf's own tasks."""
    if runtime.kopf_events is None:
        with contextlib.suppress(LookupError):
            runtime.kopf_events = (posting.event_queue_var.get(), posting.event_queue_loop_var.get())


def _post_event(
    runtime: Runtime, body: Mapping[str, Any], *, warning: bool, reason: str, message: str
) -> None:
    """A Kubernetes Event on the request, so `kubectl describe` shows the story too."""
    try:
        posting.event_queue_var.get()
    except LookupError:
        # A pass the scheduler runs (expiry, retries, a request it reached first): kopf's queue is
        # set only in kopf's per-object tasks, so without this such transitions posted no Event.
        if runtime.kopf_events is None:
            log.debug("no kopf event queue yet; the %s Event is not posted", reason)
            return
        queue, loop = runtime.kopf_events
        posting.event_queue_var.set(queue)
        posting.event_queue_loop_var.set(loop)
    try:
        kopf.event(
            cast(kopf.Body, body),
            type="Warning" if warning else "Normal",
            reason=reason,
            message=message[:1000],
        )
    except Exception:
        log.debug("could not queue an event", exc_info=True)


class _WindowClosed(Exception):
    """The grant's window ended before its RoleBinding was created: it is not created at all."""


def _removal_order(objects: Sequence[GrantObjectRef]) -> list[GrantObjectRef]:
    """Bindings first (access ends with them), then the rest in reverse order of creation."""
    reverse = list(reversed(objects))
    return [o for o in reverse if o.kind == "RoleBinding"] + [o for o in reverse if o.kind != "RoleBinding"]


class Reconciler:
    """Moves one AccessRequest through its lifecycle, one verified step at a time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # The request as this pass's last status write left it: the next step is decided from the
        # write's answer instead of a GET (it is as fresh as a GET made then). None: read it.
        self._latest: StoredRequest | None = None
        # Each policy is read once per pass, not once per step of it.
        self._policies: dict[str, tuple[GrantPolicySpec | None, str | None]] = {}
        # An approval's status fields, held back to ride on the pass's next status write (the
        # grant plan's, when it activates at once) instead of costing a write of their own. Its
        # audit record is written already; a pass that ends with it still held writes it then,
        # one that fails loses only the write, and the next pass decides the approval again.
        self._deferred: tuple[StoredRequest, AccessRequest, dict[str, Any]] | None = None
        # When a step had to wait for its target cluster: the next real attempt (shown in status),
        # which the pass returns so the scheduler comes back then, not on a backoff of its own.
        self._retry_at: datetime | None = None

    # Records written ahead of a status write: a 409 or a failed write makes the pass (or the next)
    # decide again, which must not write the same record twice; a crash in between repeats it once
    # on the next run, and never loses it.
    def _first_time(self, uid: str, event_type: EventType) -> bool:
        return event_type not in self.runtime.written_ahead.get(uid, ())

    def _wrote_ahead(self, uid: str, event_type: EventType) -> None:
        self.runtime.written_ahead.setdefault(uid, set()).add(event_type)

    def _now(self) -> datetime:
        # Second precision, as Kubernetes writes times: status times compare as strings too.
        return self.runtime.clock().replace(microsecond=0)

    async def reconcile(
        self, namespace: str, name: str, *, body: Mapping[str, Any] | None = None
    ) -> PassResult:
        """Run every step that is due now; return when the request next needs attention. `body`:
        the request as a watch event just delivered it, to start from instead of a read."""
        # Each pass on a Reconciler of its own: the pass state above lives on the instance, and
        # passes on one Reconciler run at once (the sweep runs up to 8); sharing it, one pass took
        # up another's request or its held-back approval.
        return await Reconciler(self.runtime)._pass(namespace, name, body)

    async def _pass(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> PassResult:
        async with self.runtime.lock_for(f"{namespace}/{name}"):
            if body is not None:
                self._latest = StoredRequest(body)
            result = await self._steps(namespace, name)
            if self._deferred is not None:
                base, request, status = self._deferred
                self._deferred = None
                with contextlib.suppress(Conflict):  # changed meanwhile: its event brings it back
                    await self._patch_status(base, request, status)
            return result

    async def _steps(self, namespace: str, name: str) -> PassResult:
        for _ in range(_MAX_STEPS_PER_PASS):
            if self.runtime.stopping:
                return RETRY
            stored, self._latest = self._latest, None
            if stored is None:
                stored = await self.runtime.own.get_request(namespace, name)
            if stored is None or stored.deleting:
                return RETRY  # deletion is the delete handler's business
            if stored.phase is not None and stored.phase.terminal:
                return await self._finished(stored)
            step, request, policy = await self._next(stored)
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
                    await self.runtime.own.update_finalizers(
                        namespace,
                        name,
                        [*stored.finalizers, FINALIZER],
                        resource_version=stored.resource_version,
                    )
                continue
            try:
                self._retry_at = None
                await self._carry_out(step, stored=stored, request=request, policy=policy)
            except Conflict:
                # Someone changed the request since we read it (a revoke landing mid-issue, an
                # approval): what was made is in the grant record, so decide again on a fresh
                # read now instead of waiting for the next event.
                log.debug("%s/%s changed while being reconciled; reading it again", namespace, name)
                self._latest = self._deferred = None
                continue
            if self._retry_at is not None:
                return PassResult(requeue_at=self._retry_at)  # waiting on a target cluster
            active = self._latest is not None and self._latest.phase is Phase.ACTIVE
            if step.action is Action.ACTIVATE and not active:
                # Waiting on the target cluster (or failed): the scheduler retries after its
                # backoff. Once Active, the next turn says when it expires.
                return RETRY
        return RETRY

    async def _patch_status(
        self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]
    ) -> StoredRequest:
        """Merge-patch status with the resourceVersion we read (a stale writer loses), keeping the
        `Granted` condition in step with the phase."""
        if "phase" in status:
            condition = granted_condition(
                phase=Phase(status["phase"]),
                reason=status.get("reason", ""),
                message=status.get("message", "")[:1000],
                previous=request.status.conditions,
                now=self.runtime.clock(),
            )
            status = {**status, "conditions": [condition.model_dump(mode="json", by_alias=True)]}
        if self._deferred is not None:
            status = {**self._deferred[2], **status}
        written = await self.runtime.own.patch_request_status(
            stored.namespace, stored.name, status, resource_version=stored.resource_version
        )
        self._deferred = None  # only once written: a failed write's successor carries it instead
        self._latest = written
        self.runtime.wrote(written)
        return written

    def _defer(self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]) -> None:
        """Hold back a status write for the pass's next one; the pass goes on as if it was made."""
        phase = Phase(status["phase"])
        condition = granted_condition(
            phase=phase,
            reason=status.get("reason", ""),
            message=status.get("message", "")[:1000],
            previous=request.status.conditions,
            now=self.runtime.clock(),
        )
        status = {**status, "conditions": [condition.model_dump(mode="json", by_alias=True)]}
        self._deferred = (stored, request, status)
        body = copy.deepcopy(dict(stored.body))
        body["status"] = {**(body.get("status") or {}), **status}
        self._latest = StoredRequest(body)

    async def _defer_async(
        self, stored: StoredRequest, request: AccessRequest, status: dict[str, Any]
    ) -> None:
        self._defer(stored, request, status)

    async def _next(self, stored: StoredRequest) -> tuple[Step, AccessRequest | None, GrantPolicySpec | None]:
        try:
            request = stored.parse()
        except ValidationError as exc:
            if stored.phase is not None and stored.phase.terminal:
                return Step(Action.NONE), None, None
            await self._fail_unparseable(stored, exc)
            return Step(Action.NONE), None, None
        settings = self.runtime.settings
        name = request.spec.policy
        if name not in self._policies:
            self._policies[name] = await load_policy(self.runtime, name)
        policy, policy_problem = self._policies[name]
        policy = await scoped_to_namespace(self.runtime, policy, request.spec.namespace)
        seal_valid = verify_requester_seal(
            key=settings.receipt_key,
            namespace=stored.namespace,
            name=stored.name,
            spec=stored.spec,
            seal=stored.annotations.get(REQUESTER_SEAL_ANNOTATION),
        )
        step = next_step(
            request=request,
            policy=policy,
            now=self.runtime.clock(),
            seal_valid=seal_valid,
            tally=self._tally(stored, request, policy),
            inline_rules_enabled=settings.inline_rules_enabled,
            operator_namespace=settings.operator_namespace,
            existing=self._duplicate_of(stored, policy),
            limit=self._limit(stored, policy),
        )
        if policy_problem is not None:  # an invalid policy is not a missing one: say what is wrong
            step = invalid_policy_step(step, problem=policy_problem)
        elif step.action is Action.WAIT:  # an Active grant waiting for its expiry may end idle first
            step = await idle_check(self.runtime, request, policy) or step
        step = named_revoker(step, key=settings.receipt_key, uid=stored.uid, annotations=stored.annotations)
        if stored.phase is None and step.action in (Action.PEND, Action.APPROVE):
            # Decided on: a duplicate reconciled before this decision's write lands loses to it (no
            # await between the check above and this mark, so no other pass runs in between).
            self.runtime.open_requests.claim(stored.body)
        return step, request, policy

    def _duplicate_of(self, stored: StoredRequest, policy: GrantPolicySpec | None) -> OpenRequest | None:
        """Another open request of the same requester and scope that this new one loses to."""
        if stored.phase is not None or (policy is not None and not policy.limits.one_open_per_scope):
            return None
        return self.runtime.open_requests.supersedes(stored.body)

    def _limit(self, stored: StoredRequest, policy: GrantPolicySpec | None) -> str | None:
        """Past the policy's spec.limits, counting only what comes before this request (a race
        between replicas' admissions is closed here, the same way on any leader)."""
        if stored.phase is not None or policy is None:
            return None
        return limit_refusal(
            self.runtime.open_requests,
            stored.body,
            limits=policy.limits,
            now=self.runtime.clock(),
            at_reconcile=True,
        )

    def _tally(
        self, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
    ) -> ApprovalTally | None:
        if policy is None or request.spec.requester is None:
            return None
        return tally(
            policy=policy.approval,
            requester=request.spec.requester,
            recorded=parse_recorded(stored.annotations.get(APPROVALS_ANNOTATION)),
            key=self.runtime.settings.receipt_key,
            request_uid=stored.uid,
            spec=stored.spec,
        )

    async def _fail_unparseable(self, stored: StoredRequest, exc: ValidationError) -> None:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        status = _status(
            phase=Phase.FAILED, reason=Reason.INVALID_REQUEST, message=problems, ended_at=self._now()
        )
        await self.runtime.own.patch_request_status(
            stored.namespace, stored.name, status, resource_version=stored.resource_version
        )

    async def _carry_out(
        self, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
    ) -> None:
        if step.action is Action.ACTIVATE:
            assert policy is not None and step.duration is not None  # next_step guarantees both
            await self._activate(step, stored=stored, request=request, policy=policy)
        elif step.action in (Action.EXPIRE, Action.REVOKE):
            await self._end_grant(step, stored=stored, request=request, policy=policy, policy_read=True)
        elif step.action is Action.RECORD_APPROVALS:
            await self._record_approvals(step, stored=stored, request=request, policy=policy)
        elif step.action is Action.SHORTEN:
            await self._shorten(step, stored=stored, request=request, policy=policy)
        else:
            await self._transition(step, stored=stored, request=request, policy=policy)

    # --- One recorder for every transition ----------------------------------------------------------

    async def _record(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        cluster: str,
        now: datetime,
        approvals: tuple[ApprovalEntry, ...] = (),
        write: Callable[[], Awaitable[object]] | None = None,
        **audit: Any,
    ) -> None:
        """Audit record, then the status `write`, then metrics, Event and log line for one
        transition, all from its consequence.

        The record goes first (write-ahead): an operator killed between the two repeats the record
        on its next run instead of losing it. A 409 on the write makes the pass decide again, which
        does not write the same record twice.
        """
        runtime = self.runtime
        consequence = step.consequence
        phase = consequence.phase
        event_type = EventType(consequence.audit_event)
        if self._first_time(stored.uid, event_type):
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=event_type,
                    at=now,
                    cluster=cluster,
                    decision="granted" if phase is Phase.ACTIVE else phase.value,
                    reason=step.message or step.reason,
                    approvals=approvals,
                    ended_at=now if phase.terminal else None,
                    **audit,
                )
            )
            self._wrote_ahead(stored.uid, event_type)
        if write is not None:
            await write()
        runtime.metrics.request_outcome(policy=request.spec.policy, outcome=consequence.outcome)
        _post_event(
            self.runtime, stored.body, warning=consequence.warning, reason=step.reason, message=step.message
        )
        # The message may carry a justification or a release reason: a quoted field, never a new line.
        log.info(
            "%s/%s -> %s: message=%s", stored.namespace, stored.name, phase.value, log_field(step.message)
        )
        # A guardrail's denial (a duplicate or a request past a limit that raced past admission) is the
        # agent's to read in status, not news for approvers: a looping agent never floods their channel.
        if runtime.notifier is not None and step.reason not in _QUIET_REASONS:
            # queued, never awaited: a receiver cannot slow a grant
            expires_at = audit.get("expires_at")
            policy = self._policies.get(request.spec.policy, (None, None))[0]
            runtime.notifier.transition(
                request,
                phase=phase,
                reason=step.reason,
                message=step.message,
                expires_at=expires_at,
                notifications=policy.notifications if policy is not None else None,
            )

    # --- Decisions --------------------------------------------------------------------------------

    async def _transition(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        policy: GrantPolicySpec | None,
        cluster: str | None = None,
        grant: GrantRef | None = None,
    ) -> None:
        """A phase change that creates nothing: decisions, approvals, time-outs and failures. A
        terminal one first removes whatever a recorded grant plan may have created."""
        runtime = self.runtime
        now = self._now()
        phase = step.consequence.phase
        grant = grant or request.status.grant
        if phase.terminal and grant is not None:
            await self._remove_recorded(grant, request=request, policy=policy)
        fields: dict[str, Any] = {"phase": phase, "reason": step.reason, "message": step.message}
        if request.status.requested_at is None:
            fields["requested_at"] = now
        if step.action is not Action.PEND:
            fields["decided_at"] = now
        if phase.terminal:
            fields["ended_at"] = now
        if grant is not None:
            fields["grant"] = grant
        approvals = self._approval_entries(step.tally)
        if approvals:
            fields["approvals"] = approvals
        if cluster is None:
            cluster = policy.target.cluster if policy is not None else "unknown"
        if request.status.phase is None and self._first_time(stored.uid, EventType.REQUESTED):
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=EventType.REQUESTED,
                    at=now,
                    cluster=cluster,
                    reason=request.spec.justification or None,
                )
            )
            self._wrote_ahead(stored.uid, EventType.REQUESTED)
            runtime.metrics.request_outcome(policy=request.spec.policy, outcome="requested")
        await self._record(
            step,
            stored=stored,
            request=request,
            cluster=cluster,
            now=now,
            approvals=approvals,
            write=(
                # Approved is a way station: its fields go out with the pass's next write.
                (lambda: self._defer_async(stored, request, _status(**fields)))
                if step.action is Action.APPROVE
                else (lambda: self._patch_status(stored, request, _status(**fields)))
            ),
        )
        if step.action is Action.APPROVE and request.status.requested_at is not None:
            runtime.metrics.observe_approval_wait(
                policy=request.spec.policy, seconds=(now - request.status.requested_at).total_seconds()
            )

    async def _record_approvals(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        policy: GrantPolicySpec | None,
    ) -> None:
        """Each counted approval goes into status and the trail as it arrives, not only at quorum."""
        runtime = self.runtime
        now = self._now()
        entries = self._approval_entries(step.tally)
        known = {(entry.approver, entry.receipt) for entry in request.status.approvals}
        await self._patch_status(
            stored, request, _status(reason=step.reason, message=step.message, approvals=entries)
        )
        cluster = policy.target.cluster if policy is not None else "unknown"
        for entry in entries:
            if (entry.approver, entry.receipt) in known:
                continue
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=EventType.APPROVAL_RECORDED,
                    at=now,
                    cluster=cluster,
                    decision="approve",
                    reason=f"approved by {entry.approver}" + (f": {entry.reason}" if entry.reason else ""),
                    approvals=(entry,),
                )
            )
        _post_event(
            self.runtime, stored.body, warning=False, reason=Reason.APPROVAL_RECORDED, message=step.message
        )

    async def _shorten(
        self, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec | None
    ) -> None:
        """A shortened maxDuration: expiresAt moves earlier (recorded first, like any transition);
        the timer then ends the grant at the new time. The objects keep the expires-at annotation
        they were issued with (later than the new end): it is the sweep's backstop for an operator
        that is down, and one that starts again ends the grant from status.expiresAt at once."""
        runtime = self.runtime
        assert step.wake_at is not None  # the lifecycle sets the new end
        grant = request.status.grant
        cluster = grant.cluster if grant is not None else (policy.target.cluster if policy else "unknown")
        # Keyed by the new end: a policy cut twice shortens twice, and each is recorded once.
        memo = f"{EventType.SHORTENED.value}/{format_time(step.wake_at)}"
        if memo not in runtime.written_ahead.get(stored.uid, ()):
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=EventType.SHORTENED,
                    at=self._now(),
                    cluster=cluster,
                    decision="shortened",
                    reason=step.message,
                    expires_at=step.wake_at,
                )
            )
            runtime.written_ahead.setdefault(stored.uid, set()).add(memo)
        # The phase rides along so the Granted condition's message names the new end too.
        status = _status(
            phase=Phase.ACTIVE, expires_at=step.wake_at, reason=step.reason, message=step.message
        )
        await self._patch_status(stored, request, status)
        _post_event(runtime, stored.body, warning=True, reason=step.reason, message=step.message)
        log.info("%s/%s expiresAt moved to %s: %s", stored.namespace, stored.name, step.wake_at, step.message)
        if runtime.notifier is not None:
            runtime.notifier.transition(
                request, phase=Phase.ACTIVE, reason=step.reason, message=step.message, expires_at=step.wake_at
            )

    @staticmethod
    def _approval_entries(result: ApprovalTally | None) -> tuple[ApprovalEntry, ...]:
        if result is None:
            return ()
        return tuple(
            ApprovalEntry(
                approver=entry.approver,
                groups=entry.groups,
                at=entry.at,
                reason=entry.reason,
                receipt=entry.receipt,
            )
            for entry in result.counted
        )

    async def _fail(
        self,
        stored: StoredRequest,
        request: AccessRequest,
        *,
        reason: str,
        message: str,
        cluster: str,
        grant: GrantRef | None,
    ) -> None:
        step = Step(Action.FAIL, reason=reason, message=message)
        await self._transition(
            step, stored=stored, request=request, policy=None, cluster=cluster, grant=grant
        )

    # --- Issuing a grant: plan recorded, intent audited, objects created, then Active ---------------

    async def _activate(
        self, step: Step, *, stored: StoredRequest, request: AccessRequest, policy: GrantPolicySpec
    ) -> None:
        runtime = self.runtime
        assert step.duration is not None and step.decision is not None and request.spec.requester is not None
        cluster = policy.target.cluster
        record = request.status.grant
        # A retry keeps the recorded window, so objects made by an earlier attempt stay in step.
        # Except after waiting for the target namespace: nothing of the grant can exist yet (its
        # target objects live in that namespace, the kubeconfig objects follow the binding), so the
        # clock starts now and the grant runs for all it asked. The namespace wait still counts
        # from the plan's `plannedAt`.
        waited = request.status.reason == Reason.WAITING_FOR_NAMESPACE
        kept = record.planned_at if record is not None and not waited else None
        started = kept or self._now()
        plan = plan_grant(
            request=request,
            decision=step.decision,
            duration=step.duration,
            now=started,
            grants_namespace=runtime.settings.grants_namespace,
        )
        if self._now() >= plan.expires_at:
            # A recorded plan whose window passed while its cluster could not be reached (only a
            # recorded plan keeps its start): access is never issued outside its window.
            await self._window_closed(stored, request, cluster=cluster, record=record, plan=plan)
            return
        if self._deferred is not None and policy.target.type is not TargetType.IN_CLUSTER:
            # Reaching another cluster can take seconds (an AssumeRole, a slow endpoint): status
            # says Approved meanwhile instead of nothing.
            base, deferred_request, status = self._deferred
            stored = await self._patch_status(base, deferred_request, status)
        # Reaching the target creates nothing, so it comes before the plan: a target that cannot
        # be reached leaves no plan to clean up after.
        try:
            target = await runtime.cluster_for(
                policy.target,
                session_name=f"jitgrant-{stored.namespace}-{stored.name}",
                source_identity=request.spec.requester.username,
            )
        except ClusterAccessError as exc:
            await self._trouble(stored, request, exc, cluster=cluster, record=record)
            return
        made: GrantRef | None = None
        try:
            if record is None:
                record = plan.record(
                    target=policy.target,
                    own_cluster=runtime.own.name,
                    cluster_role=step.decision.cluster_role,
                )
                written = await self._write_ahead(
                    step, stored=stored, request=request, plan=plan, record=record
                )
                if written is None:
                    return
                stored = written
            refused = await grant_refusal(
                target,
                policy_name=request.spec.policy,
                policy=policy,
                cluster_wide_deny=runtime.settings.deny_rules,
                namespace=request.spec.namespace,
                cluster_role=step.decision.cluster_role,
                inline_rules=step.decision.rules,
            )
            if refused is not None:  # a ClusterRole widened since the policy was written, or a deny rule met
                why, message = refused
                await self._fail(stored, request, reason=why, message=message, cluster=cluster, grant=record)
                return
            made = await self._create(plan, record=record, request=request, target=target)
        except _WindowClosed:
            pass  # handled below, once the target's client is closed
        except ForeignObjectError as exc:
            await self._fail(
                stored, request, reason=Reason.NAME_COLLISION, message=str(exc), cluster=cluster, grant=record
            )
            return
        except Conflict:
            # Changed since read (a second 409 on the plan's write under load): the pass reads it
            # again and decides again; not a reason to fail the grant.
            raise
        except ClusterAccessError as exc:
            await self._trouble(stored, request, exc, cluster=cluster, record=record, step=step)
            return
        finally:
            if target is not runtime.own:
                target.close()
        if made is None:
            assert record is not None
            await self._window_closed(stored, request, cluster=cluster, record=record, plan=plan)
            return
        runtime.cluster_reached(cluster)
        await self._mark_active(step, stored=stored, request=request, plan=plan, record=made, cluster=cluster)

    async def _window_closed(
        self,
        stored: StoredRequest,
        request: AccessRequest,
        *,
        cluster: str,
        record: GrantRef | None,
        plan: GrantPlan,
    ) -> None:
        """Failed, TargetUnreachable: whatever an earlier attempt made goes (never a binding: it is
        created only inside the window), and the request never becomes Active."""
        why = f" (last: {request.status.reason}: {request.status.message})" if request.status.reason else ""
        message = (
            f"the grant's window closed at {format_time(plan.expires_at)} before cluster {cluster} could "
            f"be reached{why}; nothing was granted"
        )
        await self._fail(
            stored, request, reason=Reason.TARGET_UNREACHABLE, message=message, cluster=cluster, grant=record
        )

    async def _write_ahead(
        self, step: Step, *, stored: StoredRequest, request: AccessRequest, plan: GrantPlan, record: GrantRef
    ) -> StoredRequest | None:
        """The intent goes into the trail (accepted before any access exists), then the plan into
        status, before anything is created. Once the plan is recorded neither is written again."""
        runtime = self.runtime
        try:
            if self._first_time(stored.uid, EventType.ISSUING):
                await runtime.audit.record_before_grant(
                    audit_event(
                        request=request,
                        event_type=EventType.ISSUING,
                        at=plan.now,
                        cluster=record.cluster,
                        decision="issuing",
                        # What is about to exist, not the step's "the grant is active": nothing is yet.
                        reason=f"issuing {describe_grant(request)} in cluster {record.cluster}",
                        activated_at=plan.now,
                        expires_at=plan.expires_at,
                        binding=plan.binding_name,
                    )
                )
                self._wrote_ahead(stored.uid, EventType.ISSUING)
        except AuditUnavailable as exc:
            await self._fail(
                stored,
                request,
                reason=Reason.AUDIT_UNAVAILABLE,
                message=f"the grant was not issued because its audit record could not be stored: {exc}",
                cluster=record.cluster,
                grant=None,
            )
            return None
        message = f"issuing {describe_grant(request)} in cluster {record.cluster}"
        patch = _status(reason=Reason.ISSUING, message=message, grant=record)
        try:
            return await self._patch_status(stored, request, patch)
        except Conflict:
            # Something else wrote the request since we read it (often kopf's own bookkeeping). If
            # it is still to be activated, record the same plan on the fresh copy rather than
            # leave it to a retry that would audit the intent a second time.
            fresh = await self.runtime.own.get_request(stored.namespace, stored.name)
            if fresh is None or fresh.deleting or fresh.uid != stored.uid:
                raise
            again, current, _ = await self._next(fresh)
            if again.action is not Action.ACTIVATE or current is None or current.status.grant is not None:
                raise
            return await self._patch_status(fresh, current, patch)

    async def _create(
        self, plan: GrantPlan, *, record: GrantRef, request: AccessRequest, target: ClusterPort
    ) -> GrantRef:
        """Create every planned object, sealed; returns the record with each object's uid."""
        runtime = self.runtime
        key, uid = runtime.settings.receipt_key, plan.owner.uid
        made: dict[tuple[str, str, str], str] = {}
        # The identity and the Role first: the binding, which gives access, comes last.
        for body in (plan.service_account, plan.role, plan.binding):
            if body is plan.binding and runtime.clock() >= plan.expires_at:
                raise _WindowClosed  # a slow cluster took the rest of the window: no binding now
            if body is not None:
                obj = await grant_objects.create_owned(target, body, key=key, request_uid=uid)
                made[(obj.kind, obj.namespace, obj.name)] = obj.uid
        if plan.service_account is not None:
            for body in await self._kubeconfig_objects(plan, request=request, target=target):
                obj = await grant_objects.create_owned(runtime.own, body, key=key, request_uid=uid)
                made[(obj.kind, obj.namespace, obj.name)] = obj.uid
        objects = tuple(
            ref.model_copy(update={"uid": made.get((ref.kind, ref.namespace, ref.name), ref.uid)})
            for ref in record.objects
        )
        return record.model_copy(update={"objects": objects, "expires_at": plan.expires_at})

    async def _kubeconfig_objects(
        self, plan: GrantPlan, *, request: AccessRequest, target: ClusterPort
    ) -> list[dict[str, Any]]:
        """Token for the grant's ServiceAccount, wrapped in a kubeconfig only the requester can read."""
        assert plan.service_account_name is not None and request.spec.requester is not None
        token = await target.mint_token(
            namespace=plan.grants_namespace,
            service_account=plan.service_account_name,
            seconds=token_seconds(plan.expires_at - plan.now),
        )
        text = kubeconfig_yaml(
            scoped_kubeconfig(
                cluster_name=target.name,
                server=target.server,
                ca_pem=target.ca_pem,
                token=token,
                namespace=plan.namespace,
                user=plan.service_account_name,
            )
        )
        reader = (
            request.spec.requester.extra.get(CREATED_BY_EXTRA, ("",))[0] or request.spec.requester.username
        )
        where = plan.grants_namespace
        role, binding = kubeconfig_reader(
            owner=plan.owner, namespace=where, expires_at=plan.expires_at, reader=reader
        )
        secret = kubeconfig_secret(
            owner=plan.owner, namespace=where, expires_at=plan.expires_at, kubeconfig_text=text
        )
        return [secret, role, binding]

    async def _mark_active(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        plan: GrantPlan,
        record: GrantRef,
        cluster: str,
    ) -> None:
        runtime = self.runtime
        # The plan's time is when it was recorded (the `issuing` record); access began only now, once
        # its binding exists, which can be later on a slow cluster: the trail keeps both.
        granted_at = self._now()
        message = f"{describe_grant(request)} until {format_time(plan.expires_at)}" + (
            f"; kubeconfig in Secret {plan.secret_name}" if plan.secret_name else ""
        )
        if granted_at > plan.now:
            message += f" (planned at {format_time(plan.now)}, granted at {format_time(granted_at)})"
        fields: dict[str, Any] = {
            "phase": Phase.ACTIVE,
            "reason": step.reason,
            "message": message,
            # The window the policy allowed started with the plan; `expiresAt - activatedAt` stays
            # the approved duration. The trail's `granted` record says when access really began.
            "activated_at": plan.now,
            "expires_at": plan.expires_at,
            "grant": record,
        }
        if request.status.requested_at is None:
            fields["requested_at"] = plan.now
        # A conflict here (a revoke landed meanwhile) loses nothing: the plan is already in status,
        # and the next pass removes from it.
        shown = Step(Action.ACTIVATE, reason=step.reason, message=message)
        await self._record(
            shown,
            stored=stored,
            request=request,
            cluster=cluster,
            now=granted_at,
            write=lambda: self._patch_status(stored, request, _status(**fields)),
            activated_at=granted_at,
            expires_at=plan.expires_at,
            binding=plan.binding_name,
        )
        runtime.metrics.grant_activated(cluster)
        started = request.status.requested_at or plan.now
        runtime.metrics.observe_time_to_active(
            policy=request.spec.policy, seconds=(self._now() - started).total_seconds()
        )

    async def _trouble(
        self,
        stored: StoredRequest,
        request: AccessRequest,
        exc: ClusterAccessError,
        *,
        cluster: str,
        record: GrantRef | None,
        step: Step | None = None,
    ) -> None:
        """A refusal fails the request (removing what was made); a missing namespace is waited for
        a bounded time; a passing problem is shown while the timer retries."""
        if isinstance(exc, NotFound) and exc.details_kind == "namespaces":
            await self._namespace_missing(stored, request, cluster=cluster, record=record)
            return
        if isinstance(exc, Forbidden) or (isinstance(exc, Refused) and exc.status == 422):
            # The API server itself refused: e.g. the ClusterRole is not in the operator's `bind`
            # allowlist. Nothing stays behind; say exactly what the server said.
            role = step.decision.cluster_role if step is not None and step.decision is not None else None
            await self._fail(
                stored,
                request,
                reason=Reason.GRANT_REFUSED_BY_CLUSTER,
                message=_refusal_message(cluster, role, exc),
                cluster=cluster,
                grant=record,
            )
            return
        if not exc.retryable:
            await self._fail(
                stored, request, reason=exc.reason, message=exc.message, cluster=cluster, grant=record
            )
            return
        runtime = self.runtime
        runtime.metrics.reconcile_error(handler="activate")
        runtime.cluster_failed(cluster, exc)
        retry_at = runtime.next_attempt(cluster, (stored.namespace, stored.name), at_least=exc.retry_after)
        self._retry_at = retry_at
        message = f"{exc.message}; next attempt at {format_time(retry_at)}"
        if request.status.reason == exc.reason and request.status.message == message:
            return  # already shown; writing again would only wake every watcher for nothing
        await self._patch_status(stored, request, _status(reason=exc.reason, message=message))

    async def _namespace_missing(
        self, stored: StoredRequest, request: AccessRequest, *, cluster: str, record: GrantRef | None
    ) -> None:
        """A namespace may be created moments after the request; after `namespace_wait` the request
        fails for good, so it can never become Active later, however late the namespace appears."""
        runtime = self.runtime
        planned = record.planned_at if record is not None else None
        waited = self._now() - (planned or self._now())
        namespace = request.spec.namespace
        if waited >= runtime.namespace_wait:
            await self._fail(
                stored,
                request,
                reason=Reason.NAMESPACE_NOT_FOUND,
                message=f"namespace {namespace} does not exist in cluster {cluster} (waited "
                f"{int(waited.total_seconds())}s); nothing was granted",
                cluster=cluster,
                grant=record,
            )
            return
        if request.status.reason == Reason.WAITING_FOR_NAMESPACE:
            return
        message = (
            f"namespace {namespace} does not exist in cluster {cluster}; waiting up to "
            f"{int(runtime.namespace_wait.total_seconds())}s for it before failing"
        )
        await self._patch_status(
            stored, request, _status(reason=Reason.WAITING_FOR_NAMESPACE, message=message)
        )

    # --- Removing a finished request after its retention --------------------------------------------

    async def _finished(self, stored: StoredRequest) -> PassResult:
        """A request that ended: when it is due for removal; done when kept forever or removed."""
        runtime = self.runtime
        retention = runtime.settings.finished_retention
        verdict = removal(stored.body.get("status") or {}, retention=retention, now=runtime.clock())
        if verdict.disposal is Disposal.WAIT:
            return PassResult(requeue_at=verdict.remove_at)
        if verdict.disposal is Disposal.STAMP:
            now = self._now()
            await runtime.own.patch_request_status(
                stored.namespace, stored.name, _status(ended_at=now), resource_version=stored.resource_version
            )
            return PassResult(requeue_at=now + retention)
        if verdict.disposal is Disposal.REMOVE:
            return DONE if await self._remove_finished(stored, verdict) else RETRY
        return DONE  # kept forever: nothing will ever be due, until an event says otherwise

    async def _remove_finished(self, stored: StoredRequest, verdict: Removal) -> bool:
        """The removal is recorded (durably, like an intent to grant) before the request is deleted:
        once it is gone the audit trail is the only record, so no record means no deletion.
        Returns whether it is gone (removed, or not there to remove); False: kept, to try again."""
        runtime = self.runtime
        now = self._now()
        phase = stored.phase.value if stored.phase is not None else "finished"
        ended = format_time(verdict.ended_at) if verdict.ended_at is not None else "?"
        message = (
            f"{phase} since {ended}; removed after the finished-request retention of "
            f"{describe_retention(runtime.settings.finished_retention)}"
        )
        try:
            await runtime.audit.record_before_grant(await self._removal_event(stored, verdict, now, message))
        except AuditUnavailable as exc:
            # Kept, and tried again with the scheduler's backoff.
            log.warning(
                "%s/%s kept: its removal could not be recorded: %s", stored.namespace, stored.name, exc
            )
            return False
        # The finalizer is then released as for any deletion: the revocation it waits for finds
        # nothing, since a finished request holds no access.
        if not await runtime.own.delete_request(stored.namespace, stored.name, uid=stored.uid):
            return True  # gone already, or recreated under the same name: not this one to delete
        # The object is gone; an Event on it still tells `kubectl get events` for an hour why.
        _post_event(
            self.runtime, stored.body, warning=False, reason=Reason.RETENTION_ELAPSED, message=message
        )
        log.info("%s/%s removed: message=%s", stored.namespace, stored.name, log_field(message))
        return True

    async def _removal_event(
        self, stored: StoredRequest, verdict: Removal, now: datetime, message: str
    ) -> AuditEvent:
        try:
            request = stored.parse()
        except ValidationError:
            request = None  # a request Failed as unparseable: recorded by what identifies it
        if request is None:
            return AuditEvent(
                transition_id=transition_id(stored.uid, EventType.REMOVED),
                type=EventType.REMOVED,
                time=now,
                request_uid=stored.uid,
                request_name=stored.name,
                request_namespace=stored.namespace,
                policy=None,
                cluster="unknown",
                requester=None,
                scope=None,
                window=None,
                decision="removed",
                reason=message,
            )
        grant = request.status.grant
        if grant is not None:
            cluster = _cluster_of(grant)
        else:
            policy = await self.runtime.get_policy(request.spec.policy)
            cluster = policy.target.cluster if policy is not None else "unknown"
        return audit_event(
            request=request,
            event_type=EventType.REMOVED,
            at=now,
            cluster=cluster,
            decision="removed",
            reason=message,
            ended_at=verdict.ended_at,
        )

    # --- Ending a grant -------------------------------------------------------------------------------

    async def _end_grant(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        write_status: bool = True,
        policy: GrantPolicySpec | None = None,
        policy_read: bool = False,
    ) -> None:
        """Expiry or revocation: the access goes first, the record follows and never holds it up."""
        runtime = self.runtime
        grant = request.status.grant
        if not policy_read:  # the pass read it already (None: missing or invalid, as here)
            policy = await runtime.get_policy(request.spec.policy)
        if grant is not None:
            try:
                await self._remove_recorded(grant, request=request, policy=policy)
            except ClusterAccessError as exc:
                if not (exc.retryable and write_status):
                    raise
                await self._removal_overdue(
                    step, stored=stored, request=request, cluster=_cluster_of(grant), exc=exc
                )
                return
            runtime.removal_overdue(_cluster_of(grant), stored.uid, False)
        now = self._now()
        status = _status(phase=step.consequence.phase, reason=step.reason, message=step.message, ended_at=now)
        if grant is not None:
            cluster = _cluster_of(grant)
        else:
            cluster = policy.target.cluster if policy is not None else "unknown"
        await self._record(
            step,
            stored=stored,
            request=request,
            cluster=cluster,
            now=now,
            write=(lambda: self._patch_status(stored, request, status)) if write_status else None,
        )
        if grant is not None and request.status.phase is Phase.ACTIVE:
            runtime.metrics.grant_ended(cluster)
            if step.action is Action.EXPIRE and request.status.expires_at is not None:
                lag = (now - request.status.expires_at).total_seconds()
                runtime.metrics.observe_revocation_lag(cluster=cluster, seconds=max(lag, 0.0))

    async def _removal_overdue(
        self,
        step: Step,
        *,
        stored: StoredRequest,
        request: AccessRequest,
        cluster: str,
        exc: ClusterAccessError,
    ) -> None:
        """The grant should be gone and its cluster does not answer: the request stays Active (its
        objects may still exist) with the `RemovalOverdue` condition saying where, since when and
        when the next attempt is. The trail and an Event hear of it once, when it becomes overdue;
        the gauge behind the alert counts it until the removal is done."""
        runtime = self.runtime
        now = self._now()
        runtime.cluster_failed(cluster, exc)
        runtime.removal_overdue(cluster, stored.uid, True)
        retry_at = runtime.next_attempt(cluster, (stored.namespace, stored.name), at_least=exc.retry_after)
        self._retry_at = retry_at
        shown = [c for c in request.status.conditions if c.type == REMOVAL_OVERDUE_CONDITION]
        before = next((c for c in shown if c.status == "True"), None)
        expires_at = request.status.expires_at
        if before is not None:
            since = before.last_transition_time
        elif step.action is Action.EXPIRE and expires_at is not None:
            since = expires_at
        else:
            since = now
        what = "expired" if step.action is Action.EXPIRE else f"was revoked ({step.message})"
        message = (
            f"the grant {what}, but its removal from cluster {cluster} is overdue since "
            f"{format_time(since)}: {exc.message} ({exc.reason}); next attempt at {format_time(retry_at)}"
        )
        condition = Condition(
            type=REMOVAL_OVERDUE_CONDITION,
            status="True",
            reason=exc.reason,
            message=message[:1000],
            last_transition_time=since,
        )
        if before is None:
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=EventType.REMOVAL_OVERDUE,
                    at=now,
                    cluster=cluster,
                    decision="overdue",
                    reason=message,
                )
            )
            _post_event(runtime, stored.body, warning=True, reason=Reason.REMOVAL_OVERDUE, message=message)
            log.warning("%s/%s: %s", stored.namespace, stored.name, message)
        others = [c for c in request.status.conditions if c.type != REMOVAL_OVERDUE_CONDITION]
        await self._patch_status(
            stored,
            request,
            _status(reason=Reason.REMOVAL_OVERDUE, message=message, conditions=(*others, condition)),
        )

    async def _remove_recorded(
        self, grant: GrantRef, *, request: AccessRequest, policy: GrantPolicySpec | None
    ) -> None:
        """Remove every object of the recorded plan that is proven ours: the bindings first (access
        ends with them), then the Roles, the ServiceAccount (which voids its tokens) and the Secret.

        Raises when an object may stay behind and trying again can help, so the request does not
        end before its objects. One exception: a remote target that cannot be reached while no
        object of the plan is known to exist there (none has a recorded uid) does not hold the
        request up; the sweep removes whatever an interrupted attempt may have left once it can.
        """
        key, uid = self.runtime.settings.receipt_key, request.metadata.uid or ""
        objects = grant.objects or _legacy_objects(grant, request=request, own=self.runtime.own.name)
        remote = grant.target is not None and grant.target.type is not TargetType.IN_CLUSTER
        confirmed = any(ref.uid for ref in objects if ref.cluster == grant.cluster)
        target: ClusterPort | None = None
        reached = remote
        for ref in _removal_order(objects):
            in_target = ref.cluster == grant.cluster
            try:
                if in_target:
                    target = target or await self._target_for_removal(grant, policy)
                port = target if in_target and target is not None else self.runtime.own
                await grant_objects.delete_owned(
                    port, ref, key=key, request_uid=uid, trust_labels=not grant.objects
                )
            except ClusterAccessError as exc:
                reached = reached and not in_target
                if exc.retryable and not (in_target and remote and not confirmed):
                    raise  # the timer tries again
                # Asking again will not help (the operator lost its rights there), or nothing is
                # known to exist in a cluster that does not answer: say so; the sweep finishes it.
                log.error(
                    "could not remove %s %s/%s in %s (%s); left to the sweep",
                    ref.kind,
                    ref.namespace,
                    ref.name,
                    ref.cluster,
                    exc,
                )
        if reached:
            self.runtime.cluster_reached(_cluster_of(grant))

    async def _target_for_removal(self, grant: GrantRef, policy: GrantPolicySpec | None) -> ClusterPort:
        """The cluster the grant was made in, from the target recorded with it (its identity: a
        record written when clusters were keyed by name still carries region and role). Only a
        record from before EKS targets has none: it was made in the operator's own cluster, unless
        the policy still names a cluster of the recorded name, which is then the best there is."""
        target = grant.target
        if (
            target is None
            and policy is not None
            and policy.target.type is not TargetType.IN_CLUSTER
            and policy.target.cluster_name == cluster_name_of(grant.cluster)
        ):
            target = policy.target
        if target is None or target.type is TargetType.IN_CLUSTER:
            return self.runtime.own
        return await self.runtime.housekeeping_cluster(target)

    async def revoke_for_deletion(self, body: Mapping[str, Any]) -> None:
        """The finalizer's work: a deleted request loses its access before it disappears."""
        runtime = self.runtime
        given = StoredRequest(body)
        async with runtime.lock_for(f"{given.namespace}/{given.name}"):
            fresh = await runtime.own.get_request(given.namespace, given.name)
            current = fresh if fresh is not None and fresh.uid == given.uid else given
            try:
                request = current.parse()
            except ValidationError:
                return
            if request.status.phase is None or request.status.phase.terminal:
                return
            message = named_deleter(
                key=runtime.settings.receipt_key, uid=current.uid, annotations=current.annotations
            )
            step = Step(Action.REVOKE, reason=Reason.DELETED, message=message)
            # No status write: the object is going away, and a write now would make kopf's own
            # finalizer removal conflict and wait for an event that may never come.
            await self._end_grant(step, stored=current, request=request, write_status=False)


def _cluster_of(grant: GrantRef) -> str:
    """The identity of the grant's cluster, also for records that stored only its name."""
    return grant.target.cluster if grant.target is not None else grant.cluster


def _legacy_objects(grant: GrantRef, *, request: AccessRequest, own: str) -> tuple[GrantObjectRef, ...]:
    """The objects of a grant recorded before plans listed them (an operator upgraded mid-grant)."""
    owner = GrantOwner(
        uid=request.metadata.uid or "", namespace=request.metadata.namespace or "", name=request.metadata.name
    )
    names: list[tuple[str, str, str, str | None]] = [
        (grant.cluster, "ServiceAccount", grant.namespace, grant.service_account),
        (grant.cluster, "Role", grant.namespace, grant.role),
        (grant.cluster, "RoleBinding", grant.namespace, grant.role_binding),
        (own, "Secret", owner.namespace, grant.kubeconfig_secret),
    ]
    if grant.kubeconfig_secret is not None:
        reader = grant.kubeconfig_secret.removesuffix("-kubeconfig") + "-reader"
        names += [(own, "Role", owner.namespace, reader), (own, "RoleBinding", owner.namespace, reader)]
    return tuple(
        GrantObjectRef.model_validate({"cluster": c, "kind": k, "namespace": ns, "name": n})
        for c, k, ns, n in names
        if n is not None
    )


def describe_grant(request: AccessRequest) -> str:
    spec = request.spec
    if spec.cluster_role is not None:
        return f"ClusterRole {spec.cluster_role} in {spec.namespace}"
    rules = "; ".join(
        f"{','.join(rule.verbs)} {','.join(rule.resources)}"
        + (f"/{','.join(rule.resource_names)}" if rule.resource_names else "")
        for rule in spec.rules or ()
    )
    return f"{rules} in {spec.namespace}"


def _refusal_message(cluster: str, cluster_role: str | None, exc: ClusterAccessError) -> str:
    what = f"bind ClusterRole {cluster_role}" if cluster_role else "create the grant's Role and RoleBinding"
    hint = (
        f"; the operator may bind only the ClusterRoles its installation allows (Helm value "
        f"grantableClusterRoles): add {cluster_role} there if the platform team means to grant it"
        if cluster_role and exc.status == 403
        else ""
    )
    said = exc.server_message or exc.message
    return f"cluster {cluster} refused to {what}{hint}. The API server said: {said}"
