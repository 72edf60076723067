"""Carrying out the lifecycle's decisions against the cluster: the only place that turns a Step into
status patches, RBAC objects, audit records, Kubernetes Events and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn, cast

import kopf
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from jitgrant.approvals.counting import ApprovalTally, tally
from jitgrant.approvals.receipts import parse_recorded
from jitgrant.audit.records import EventType
from jitgrant.audit.trail import AuditUnavailable
from jitgrant.clusters import grant_objects
from jitgrant.clusters.errors import ClusterAccessError, classify_kubernetes_error
from jitgrant.clusters.grant_objects import ForeignObjectError
from jitgrant.clusters.own import ClusterApi
from jitgrant.grants.delivery import kubeconfig_reader, kubeconfig_secret, token_seconds
from jitgrant.grants.kubeconfig import kubeconfig_yaml, scoped_kubeconfig
from jitgrant.grants.plan import GrantPlan, plan_grant
from jitgrant.handlers.audit_events import audit_event
from jitgrant.handlers.policy_status import cluster_role_refusal, invalid_policy_step, load_policy
from jitgrant.handlers.runtime import Runtime, TargetUnavailable
from jitgrant.identity.stamp import verify_requester_seal
from jitgrant.lifecycle import Action, Step, granted_condition, next_step
from jitgrant.models import AccessRequest, ApprovalEntry, GrantPolicySpec, GrantRef, Phase, Target, TargetType
from jitgrant.models.request import TERMINAL_PHASES
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    CREATED_BY_EXTRA,
    FINALIZER,
    REQUESTER_SEAL_ANNOTATION,
    Reason,
)

log = logging.getLogger("jitgrant.reconcile")

# Persistence names are part of the API: changing them later re-handles every object.

# An approval reaches Active in the same pass: Pending -> Approved -> Active needs three steps.
_MAX_STEPS_PER_PASS = 4

_PHASE_OF = {
    Action.FAIL: Phase.FAILED,
    Action.DENY: Phase.DENIED,
    Action.PEND: Phase.PENDING,
    Action.APPROVE: Phase.APPROVED,
    Action.TIME_OUT: Phase.TIMED_OUT,
    Action.EXPIRE: Phase.EXPIRED,
    Action.REVOKE: Phase.REVOKED,
}
_EVENT_OF = {
    Action.FAIL: EventType.FAILED,
    Action.DENY: EventType.DENIED,
    Action.PEND: EventType.PENDING,
    Action.APPROVE: EventType.APPROVED,
    Action.TIME_OUT: EventType.TIMED_OUT,
    Action.EXPIRE: EventType.EXPIRED,
    Action.REVOKE: EventType.REVOKED,
}
_OUTCOME_OF = {
    Action.FAIL: "failed",
    Action.DENY: "denied",
    Action.PEND: "pending",
    Action.APPROVE: "approved",
    Action.TIME_OUT: "timed_out",
    Action.EXPIRE: "expired",
    Action.REVOKE: "revoked",
}


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _post_event(body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
    """A Kubernetes Event on the request, so `kubectl describe` shows the story too."""
    try:
        kopf.event(
            cast(kopf.Body, body),
            type="Warning" if warning else "Normal",
            reason=reason,
            message=message[:1000],
        )
    except Exception:
        log.debug("could not queue an event", exc_info=True)


class Reconciler:
    """Moves one AccessRequest through its lifecycle, one verified step at a time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def reconcile(self, namespace: str, name: str) -> datetime | None:
        """Run every step that is due now; return when the request next needs attention."""
        async with self.runtime.lock_for(f"{namespace}/{name}"):
            for _ in range(_MAX_STEPS_PER_PASS):
                if self.runtime.stopping:
                    return None
                body = await self.runtime.own.get_request(namespace, name)
                if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                    return None  # deletion is the delete handler's business
                step, request, policy = await self._next(body)
                if step.action is Action.WAIT:
                    return step.wake_at
                if step.action is Action.NONE or request is None:
                    return None
                if step.action is Action.ACTIVATE and FINALIZER not in (
                    body["metadata"].get("finalizers") or []
                ):
                    # Without the finalizer a deletion could remove the request before its grant:
                    # access is issued only once deleting the request is guaranteed to revoke it.
                    log.debug("%s/%s: waiting for the finalizer before granting", namespace, name)
                    return None
                await self._carry_out(step, body=body, request=request, policy=policy)
                if step.action is Action.ACTIVATE:
                    # Done, or waiting on the target cluster: the timer retries after the backoff.
                    return None
        return None

    async def _patch_status(
        self, request: AccessRequest, body: Mapping[str, Any], status: dict[str, Any]
    ) -> None:
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
        await self.runtime.own.patch_request_status(
            request.metadata.namespace or "",
            request.metadata.name,
            status,
            resource_version=(body.get("metadata") or {}).get("resourceVersion"),
        )

    async def _next(
        self, body: Mapping[str, Any]
    ) -> tuple[Step, AccessRequest | None, GrantPolicySpec | None]:
        try:
            request = AccessRequest.from_object(body)
        except ValidationError as exc:
            phase = (body.get("status") or {}).get("phase")
            if phase in {p.value for p in TERMINAL_PHASES}:
                return Step(Action.NONE), None, None
            await self._fail_unparseable(body, exc)
            return Step(Action.NONE), None, None
        settings = self.runtime.settings
        policy, policy_problem = await load_policy(self.runtime, request.spec.policy)
        meta = body.get("metadata") or {}
        seal_valid = verify_requester_seal(
            key=settings.receipt_key,
            namespace=request.metadata.namespace or "",
            name=request.metadata.name,
            spec=body.get("spec") or {},
            seal=(meta.get("annotations") or {}).get(REQUESTER_SEAL_ANNOTATION),
        )
        approvals = self._tally(body, request, policy)
        step = next_step(
            request=request,
            policy=policy,
            now=self.runtime.clock(),
            seal_valid=seal_valid,
            tally=approvals,
            inline_rules_enabled=settings.inline_rules_enabled,
            operator_namespace=settings.operator_namespace,
        )
        if policy_problem is not None:  # an invalid policy is not a missing one: say what is wrong
            step = invalid_policy_step(step, problem=policy_problem)
        return step, request, policy

    def _tally(
        self, body: Mapping[str, Any], request: AccessRequest, policy: GrantPolicySpec | None
    ) -> ApprovalTally | None:
        if policy is None or request.spec.requester is None:
            return None
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return tally(
            policy=policy.approval,
            requester=request.spec.requester,
            recorded=parse_recorded(annotations.get(APPROVALS_ANNOTATION)),
            key=self.runtime.settings.receipt_key,
            request_uid=request.metadata.uid or "",
            spec=body.get("spec") or {},
        )

    async def _fail_unparseable(self, body: Mapping[str, Any], exc: ValidationError) -> None:
        meta = body.get("metadata") or {}
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        now = self.runtime.clock()
        await self.runtime.own.patch_request_status(
            meta.get("namespace", ""),
            meta.get("name", ""),
            {
                "phase": Phase.FAILED.value,
                "reason": Reason.INVALID_REQUEST,
                "message": problems,
                "endedAt": _time(now),
            },
            resource_version=meta.get("resourceVersion"),
        )

    async def _carry_out(
        self, step: Step, *, body: Mapping[str, Any], request: AccessRequest, policy: GrantPolicySpec | None
    ) -> None:
        if step.action is Action.ACTIVATE:
            assert policy is not None and step.duration is not None  # next_step guarantees both
            await self._activate(step, body=body, request=request, policy=policy)
        elif step.action in (Action.EXPIRE, Action.REVOKE):
            await self._end_grant(step, body=body, request=request)
        elif step.action is Action.RECORD_APPROVALS:
            await self._record_approvals(step, body=body, request=request, policy=policy)
        else:
            await self._transition(step, body=body, request=request, policy=policy)

    async def _transition(
        self,
        step: Step,
        *,
        body: Mapping[str, Any],
        request: AccessRequest,
        policy: GrantPolicySpec | None,
        cluster: str | None = None,
    ) -> None:
        """A phase change that creates or removes nothing: decisions, approvals, time-outs."""
        runtime = self.runtime
        now = runtime.clock()
        phase = _PHASE_OF[step.action]
        status: dict[str, Any] = {"phase": phase.value, "reason": step.reason, "message": step.message}
        if request.status.requested_at is None:
            status["requestedAt"] = _time(now)
        if step.action is not Action.PEND:
            status["decidedAt"] = _time(now)
        if phase.terminal:
            status["endedAt"] = _time(now)
        approvals = self._approval_entries(step.tally)
        if approvals:
            status["approvals"] = [entry.model_dump(mode="json", by_alias=True) for entry in approvals]
        if cluster is None:
            cluster = policy.target.cluster if policy is not None else "unknown"
        if request.status.phase is None:
            await runtime.audit.record(
                audit_event(
                    request=request,
                    event_type=EventType.REQUESTED,
                    at=now,
                    cluster=cluster,
                    reason=request.spec.justification or None,
                )
            )
            runtime.metrics.request_outcome(policy=request.spec.policy, outcome="requested")
        await self._patch_status(request, body, status)
        await runtime.audit.record(
            audit_event(
                request=request,
                event_type=_EVENT_OF[step.action],
                at=now,
                cluster=cluster,
                decision=phase.value,
                reason=step.message or step.reason,
                approvals=approvals,
                ended_at=now if phase.terminal else None,
            )
        )
        runtime.metrics.request_outcome(policy=request.spec.policy, outcome=_OUTCOME_OF[step.action])
        if step.action is Action.APPROVE and request.status.requested_at is not None:
            runtime.metrics.observe_approval_wait(
                policy=request.spec.policy, seconds=(now - request.status.requested_at).total_seconds()
            )
        warning = step.action in (Action.FAIL, Action.DENY, Action.TIME_OUT)
        _post_event(body, warning=warning, reason=step.reason, message=step.message)
        log.info(
            "%s/%s -> %s: %s", request.metadata.namespace, request.metadata.name, phase.value, step.message
        )

    async def _record_approvals(
        self, step: Step, *, body: Mapping[str, Any], request: AccessRequest, policy: GrantPolicySpec | None
    ) -> None:
        """Each counted approval goes into status and the trail as it arrives, not only at quorum."""
        runtime = self.runtime
        now = runtime.clock()
        entries = self._approval_entries(step.tally)
        known = {(entry.approver, entry.receipt) for entry in request.status.approvals}
        await self._patch_status(
            request,
            body,
            {
                "reason": step.reason,
                "message": step.message,
                "approvals": [entry.model_dump(mode="json", by_alias=True) for entry in entries],
            },
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
        _post_event(body, warning=False, reason=Reason.APPROVAL_RECORDED, message=step.message)

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

    async def _activate(
        self, step: Step, *, body: Mapping[str, Any], request: AccessRequest, policy: GrantPolicySpec
    ) -> None:
        runtime = self.runtime
        assert step.duration is not None and step.decision is not None and request.spec.requester is not None
        plan = plan_grant(
            request=request, decision=step.decision, duration=step.duration, now=runtime.clock()
        )
        cluster = policy.target.cluster
        namespace = request.metadata.namespace or ""

        try:
            target = await runtime.cluster_for(
                policy.target,
                session_name=f"jitgrant-{namespace}-{request.metadata.name}",
                source_identity=request.spec.requester.username,
            )
        except TargetUnavailable as exc:
            await self._target_trouble(request, body, exc, cluster=cluster)
            return
        try:
            role = step.decision.cluster_role
            widened = await cluster_role_refusal(
                target, policy_name=request.spec.policy, policy=policy, cluster_role=role
            )
            if widened is not None:  # the ClusterRole gained dangerous rules since the policy was written
                why = Reason.CLUSTER_ROLE_WIDENED
                await self._fail(request, body, reason=why, message=widened, cluster=cluster)
                return
            await self._issue(
                step,
                plan=plan,
                body=body,
                request=request,
                target=target,
                cluster=cluster,
                policy_target=policy.target,
            )
        except TargetUnavailable as exc:
            await self._target_trouble(request, body, exc, cluster=cluster)
        finally:
            if target is not runtime.own:
                target.client.close()

    async def _target_trouble(
        self, request: AccessRequest, body: Mapping[str, Any], exc: TargetUnavailable, *, cluster: str
    ) -> None:
        """A permanent problem fails the request; a passing one is shown while the timer retries."""
        if not exc.retryable:
            await self._fail(request, body, reason=exc.reason, message=str(exc), cluster=cluster)
            return
        self.runtime.metrics.reconcile_error(handler="activate")
        if request.status.reason == exc.reason:
            return  # already shown; writing again would only wake every watcher for nothing
        await self._patch_status(
            request,
            body,
            {
                "reason": exc.reason,
                "message": f"{exc}; retrying with backoff (first retry in {exc.retry_after:.0f}s)",
            },
        )

    async def _issue(
        self,
        step: Step,
        *,
        plan: GrantPlan,
        body: Mapping[str, Any],
        request: AccessRequest,
        target: ClusterApi,
        cluster: str,
        policy_target: Target,
    ) -> None:
        runtime = self.runtime
        assert step.decision is not None
        owner, now, expires_at = plan.owner, plan.now, plan.expires_at

        # Invariant 6: the record that access is about to exist is accepted before it exists.
        try:
            await runtime.audit.record_before_grant(
                audit_event(
                    request=request,
                    event_type=EventType.GRANTED,
                    at=now,
                    cluster=cluster,
                    decision="granted",
                    reason=step.message,
                    activated_at=now,
                    expires_at=expires_at,
                    binding=plan.binding_name,
                )
            )
        except AuditUnavailable as exc:
            await self._fail(
                request,
                body,
                reason=Reason.AUDIT_UNAVAILABLE,
                message=f"the grant was not issued because its audit record could not be stored: {exc}",
                cluster=cluster,
            )
            return

        try:
            # The identity and the Role first: the binding, which gives access, comes last.
            await grant_objects.create_all(
                target, [plan.service_account, plan.role, plan.binding], owner_uid=owner.uid
            )
            if plan.service_account is not None:
                await self._deliver_kubeconfig(plan, request=request, target=target)
        except ForeignObjectError as exc:
            await self._fail(request, body, reason=Reason.NAME_COLLISION, message=str(exc), cluster=cluster)
            return
        except ClusterAccessError as exc:  # a token refresh inside a call to an EKS cluster
            raise TargetUnavailable.from_access_error(exc) from exc
        except ApiException as exc:
            if exc.status in (403, 422):
                # The API server itself refused: e.g. the ClusterRole is not in the operator's
                # `bind` allowlist. Nothing stays behind; say exactly what the server said.
                await self._remove_plan(plan, target=target)
                await self._fail(
                    request,
                    body,
                    reason=Reason.GRANT_REFUSED_BY_CLUSTER,
                    message=_refusal_message(cluster, step.decision.cluster_role, exc),
                    cluster=cluster,
                )
                return
            if exc.status == 401 or exc.status == 429 or exc.status == 0 or exc.status >= 500:
                # The target does not know the operator (on EKS: no access entry for the role), is
                # overloaded, or failed TLS: say so in status instead of retrying silently.
                await self._cluster_trouble(exc, plan=plan, target=target, cluster=cluster)
            raise
        except urllib3.exceptions.HTTPError as exc:  # no answer from the target's API server
            await self._cluster_trouble(exc, plan=plan, target=target, cluster=cluster)

        grant = GrantRef(
            cluster=cluster,
            target=policy_target,
            namespace=request.spec.namespace,
            role_binding=plan.binding_name,
            role=plan.role_name,
            cluster_role=step.decision.cluster_role if plan.role is None else None,
            service_account=plan.service_account_name,
            kubeconfig_secret=plan.secret_name,
        )
        status: dict[str, Any] = {
            "phase": Phase.ACTIVE.value,
            "reason": step.reason,
            "message": f"{describe_grant(request)} until {_time(expires_at)}"
            + (f"; kubeconfig in Secret {plan.secret_name}" if plan.secret_name else ""),
            "activatedAt": _time(now),
            "expiresAt": _time(expires_at),
            "grant": grant.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        if request.status.requested_at is None:
            status["requestedAt"] = _time(now)
        await self._patch_status(request, body, status)
        runtime.metrics.request_outcome(policy=request.spec.policy, outcome="active")
        runtime.metrics.grant_activated(cluster)
        started = request.status.requested_at or now
        runtime.metrics.observe_time_to_active(
            policy=request.spec.policy, seconds=(now - started).total_seconds()
        )
        _post_event(body, warning=False, reason=Reason.GRANTED, message=status["message"])
        log.info("%s/%s -> Active until %s", owner.namespace, request.metadata.name, _time(expires_at))

    async def _cluster_trouble(
        self, exc: Exception, *, plan: GrantPlan, target: ClusterApi, cluster: str
    ) -> NoReturn:
        error = classify_kubernetes_error(exc, cluster=cluster)
        if not error.retryable:
            await self._remove_plan(plan, target=target)
        raise TargetUnavailable.from_access_error(error) from exc

    async def _deliver_kubeconfig(
        self, plan: GrantPlan, *, request: AccessRequest, target: ClusterApi
    ) -> None:
        """Token for the grant's ServiceAccount, wrapped in a kubeconfig only the requester can read."""
        assert plan.service_account_name is not None and request.spec.requester is not None
        token = await grant_objects.mint_token(
            target,
            namespace=request.spec.namespace,
            service_account=plan.service_account_name,
            seconds=token_seconds(plan.expires_at - plan.now),
        )
        text = kubeconfig_yaml(
            scoped_kubeconfig(
                cluster_name=target.name,
                server=target.server,
                ca_pem=target.ca_pem,
                token=token,
                namespace=request.spec.namespace,
                user=plan.service_account_name,
            )
        )
        reader = (
            request.spec.requester.extra.get(CREATED_BY_EXTRA, ("",))[0] or request.spec.requester.username
        )
        role, binding = kubeconfig_reader(owner=plan.owner, expires_at=plan.expires_at, reader=reader)
        secret = kubeconfig_secret(owner=plan.owner, expires_at=plan.expires_at, kubeconfig_text=text)
        await grant_objects.create_all(self.runtime.own, [secret, role, binding], owner_uid=plan.owner.uid)

    async def _remove_plan(self, plan: GrantPlan, *, target: ClusterApi) -> None:
        try:
            await grant_objects.delete_all(
                target,
                [
                    ("RoleBinding", plan.binding_name),
                    ("Role", plan.role_name),
                    ("ServiceAccount", plan.service_account_name),
                ],
                namespace=plan.binding["metadata"]["namespace"],
                owner_uid=plan.owner.uid,
            )
        except ApiException:
            log.warning("could not clean up after a refused grant for %s", plan.owner.ref, exc_info=True)

    async def _end_grant(
        self, step: Step, *, body: Mapping[str, Any], request: AccessRequest, write_status: bool = True
    ) -> None:
        """Expiry or revocation: the access goes first, the record follows and never holds it up."""
        runtime = self.runtime
        grant = request.status.grant
        policy = await runtime.get_policy(request.spec.policy)
        if grant is not None:
            await self._remove_grant(grant, policy, request=request)
        now = runtime.clock()
        phase = _PHASE_OF[step.action]
        status: dict[str, Any] = {
            "phase": phase.value,
            "reason": step.reason,
            "message": step.message,
            "endedAt": _time(now),
        }
        if write_status:
            await self._patch_status(request, body, status)
        cluster = grant.cluster if grant is not None else (policy.target.cluster if policy else "unknown")
        await runtime.audit.record(
            audit_event(
                request=request,
                event_type=_EVENT_OF[step.action],
                at=now,
                cluster=cluster,
                decision=phase.value,
                reason=step.message,
                ended_at=now,
            )
        )
        runtime.metrics.request_outcome(policy=request.spec.policy, outcome=_OUTCOME_OF[step.action])
        if grant is not None and request.status.phase is Phase.ACTIVE:
            runtime.metrics.grant_ended(cluster)
            if step.action is Action.EXPIRE and request.status.expires_at is not None:
                lag = (now - request.status.expires_at).total_seconds()
                runtime.metrics.observe_revocation_lag(cluster=cluster, seconds=max(lag, 0.0))
        _post_event(body, warning=False, reason=step.reason, message=step.message)
        log.info(
            "%s/%s -> %s: %s", request.metadata.namespace, request.metadata.name, phase.value, step.message
        )

    async def _remove_grant(
        self, grant: GrantRef, policy: GrantPolicySpec | None, *, request: AccessRequest
    ) -> None:
        """The binding first (access ends with it), then the Role, the ServiceAccount (which voids
        its tokens) and the kubeconfig Secret."""
        owner_uid = request.metadata.uid or ""
        target = await self._target_for_removal(grant, policy)
        try:
            await grant_objects.delete_all(
                target,
                [
                    ("RoleBinding", grant.role_binding),
                    ("Role", grant.role),
                    ("ServiceAccount", grant.service_account),
                ],
                namespace=grant.namespace,
                owner_uid=owner_uid,
            )
        except ClusterAccessError as exc:
            raise TargetUnavailable.from_access_error(exc) from exc
        if grant.kubeconfig_secret is not None:
            reader = grant.kubeconfig_secret.removesuffix("-kubeconfig") + "-reader"
            await grant_objects.delete_all(
                self.runtime.own,
                [("RoleBinding", reader), ("Role", reader), ("Secret", grant.kubeconfig_secret)],
                namespace=request.metadata.namespace or "",
                owner_uid=owner_uid,
            )

    async def _target_for_removal(self, grant: GrantRef, policy: GrantPolicySpec | None) -> ClusterApi:
        target = grant.target or (policy.target if policy is not None else None)
        if target is None or target.type is TargetType.IN_CLUSTER:
            return self.runtime.own
        return await self.runtime.housekeeping_cluster(target)

    async def _fail(
        self,
        request: AccessRequest,
        body: Mapping[str, Any],
        *,
        reason: str,
        message: str,
        cluster: str,
    ) -> None:
        step = Step(Action.FAIL, reason=reason, message=message)
        await self._transition(step, body=body, request=request, policy=None, cluster=cluster)

    async def revoke_for_deletion(self, body: Mapping[str, Any]) -> None:
        """The finalizer's work: a deleted request loses its access before it disappears."""
        runtime = self.runtime
        meta = body.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        async with runtime.lock_for(key):
            fresh = await runtime.own.get_request(meta.get("namespace", ""), meta.get("name", ""))
            current = fresh if fresh is not None and fresh["metadata"].get("uid") == meta.get("uid") else body
            try:
                request = AccessRequest.from_object(current)
            except ValidationError:
                return
            if request.status.phase is None or request.status.phase.terminal:
                return
            step = Step(Action.REVOKE, reason=Reason.DELETED, message="the AccessRequest was deleted")
            # No status write: the object is going away, and a write now would make kopf's own
            # finalizer removal conflict and wait for an event that may never come.
            await self._end_grant(step, body=current, request=request, write_status=False)


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


def _refusal_message(cluster: str, cluster_role: str | None, exc: ApiException) -> str:
    what = f"bind ClusterRole {cluster_role}" if cluster_role else "create the grant's Role and RoleBinding"
    hint = (
        f"; the operator may bind only the ClusterRoles its installation allows (Helm value "
        f"grantableClusterRoles): add {cluster_role} there if the platform team means to grant it"
        if cluster_role and exc.status == 403
        else ""
    )
    return f"cluster {cluster} refused to {what}{hint}. The API server said: {_server_message(exc)}"


def _server_message(exc: ApiException) -> str:
    try:
        payload = json.loads(exc.body or "{}")
        return str(payload.get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)
