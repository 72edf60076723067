"""The guardrails a pass (and admission) apply beyond the policy's own decision: a namespaceSelector
resolved against the target namespace's live labels, and a grant's idle end read from the target
cluster's audit log (lifecycle/idle.py decides; this module gathers what it decides on)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from jitgrant.activity.attribution import activity
from jitgrant.activity.base import SourceError, Window
from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.clusters.port import RequestStore
from jitgrant.lifecycle import Step
from jitgrant.lifecycle.idle import idle_step
from jitgrant.models import AccessRequest, GrantPolicySpec, TargetType
from jitgrant.policy.selector import policy_for_namespace
from jitgrant.settings import OperatorSettings

log = logging.getLogger("jitgrant.reconcile")


class ScopeContext(Protocol):
    """What resolving a namespaceSelector reads: the engine in a pass, the runtime in admission."""

    @property
    def settings(self) -> OperatorSettings: ...

    @property
    def own(self) -> RequestStore: ...

    @property
    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Namespace labels from this replica's Namespace watch."""
        ...


async def scoped_to_namespace(
    context: ScopeContext, policy: GrantPolicySpec | None, namespace: str
) -> GrantPolicySpec | None:
    """The policy as it applies to `namespace`: its namespaceSelector resolved against the namespace's
    live labels (policy/selector.py), from the Namespace watch or, before the watch has it, a GET."""
    if policy is None or policy.namespace_selector is None or namespace in policy.namespaces:
        return policy
    labels = context.namespace_labels.get(namespace)
    if labels is None:
        labels = await context.own.read_namespace_labels(namespace)
    operator_namespace = context.settings.operator_namespace
    return policy_for_namespace(policy, namespace, labels, operator_namespace=operator_namespace)


def activity_source(context: Any, policy: GrantPolicySpec) -> Any:
    """The audit-log source the trail reads for the policy's target cluster (None: none configured).
    `context.audit` is the audit trail in the operator; other audit ports have no activity reader."""
    reader = getattr(getattr(context, "audit", None), "activity", None)
    source_for = getattr(reader, "source_for", None)
    if not callable(source_for):
        return None
    found = source_for(policy.target.cluster)
    if found is None and policy.target.type is TargetType.IN_CLUSTER:
        found = source_for("self")  # the name docs/audit.md gives the operator's own cluster
    return found


async def idle_check(context: Any, request: AccessRequest, policy: GrantPolicySpec | None) -> Step | None:
    """For an Active grant under a policy with idleTimeout: its identity's last API call, read from
    the target cluster's audit log, held against the timeout (lifecycle/idle.py). None: nothing to
    change, or the log could not be read (the grant is not ended on a log that did not answer)."""
    if policy is None or policy.idle_timeout is None:
        return None
    source = activity_source(context, policy)
    if source is None:
        return None  # refused at apply and not Ready: nothing here could judge it
    try:
        grant = identity_of(request)
    except NoGrant:
        return None
    now = context.clock()
    window = Window(start=grant.start, end=now, terms=frozenset({*grant.usernames, grant.binding_name}))
    try:
        calls = await asyncio.to_thread(lambda: activity(source.calls(window), grant))
    except SourceError as error:
        log.warning("idle check of %s/%s: %s", request.metadata.namespace, request.metadata.name, error)
        return None
    last = max((attributed.call.time for attributed in calls), default=None)
    return idle_step(request=request, policy=policy, last_call=last, now=now)
