"""GrantPolicy status, and the policy as the reconciler sees it.

- `load_policy`: the policy a request names, or why it cannot be used. A policy that does not parse
  or fails `check_policy` is *invalid*, not missing: its requests are denied as `PolicyInvalid` with
  the field and the fix (they were denied as `PolicyNotFound`, and nothing was logged).
- `cluster_role_refusal`: at grant time, the live rules of the ClusterRole to bind, held against the
  dangerous list; anything the policy did not accept refuses the grant (`ClusterRoleWidened`).
- The `Ready` condition in `status` (what `kubectl get gp` shows): valid, each ClusterRole exists,
  the operator may bind it, and it holds nothing dangerous the policy did not accept; and each OIDC
  issuer's discovery document names the issuer exactly as the policy does. Written when a
  policy changes and re-checked every `RECHECK_SECONDS`, since a ClusterRole can change under it.
  The status is a view: requests are decided on the live checks above, never on a cached condition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from jitgrant.activity.attribution import activity
from jitgrant.activity.base import SourceError, Window
from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.clusters.policy_checks import (
    list_policies,
    may_bind,
    patch_policy_status,
    read_cluster_role,
    read_namespace_labels,
    read_policy,
)
from jitgrant.lifecycle import Action, Step
from jitgrant.lifecycle.idle import idle_refusal, idle_step
from jitgrant.models import (
    API_GROUP,
    API_VERSION,
    AccessRequest,
    DenyRule,
    GrantPolicySpec,
    PolicyRule,
    TargetType,
)
from jitgrant.models.vocabulary import READY_CONDITION, Reason, format_time
from jitgrant.offline.exposure import dangerous_without_approval
from jitgrant.policy import ClusterRoleState, check_policy, readiness, rules_of, widened_reason
from jitgrant.policy.deny import grant_deny_reason
from jitgrant.policy.gate import policy_invalid_message
from jitgrant.policy.scope import policy_cluster_roles
from jitgrant.policy.selector import policy_for_namespace

log = logging.getLogger("jitgrant.policy_status")

READY = READY_CONDITION
RECHECK_SECONDS = 30.0
STATUS_ID = "policy-status"
_RESOURCE = (API_GROUP, API_VERSION, "grantpolicies")
_TASK_KEY = "policy_recheck_task"

# Steps that would decide or issue a grant: under an invalid policy they become a PolicyInvalid denial.
_GRANTWARD = frozenset({Action.APPROVE, Action.PEND, Action.ACTIVATE, Action.RECORD_APPROVALS})
_REPLACED_DENIALS = frozenset({Reason.POLICY_NOT_FOUND, Reason.POLICY_REFUSED})


# --- The policy a request names --------------------------------------------------------------------


async def load_policy(runtime: Any, name: str) -> tuple[GrantPolicySpec | None, str | None]:
    """(spec, None) for a usable policy, (None, None) when it does not exist, (None, why) when invalid."""
    body = await read_policy(runtime.own, name)
    if body is None:
        return None, None
    check = check_policy(body.get("spec"))
    if check.valid:
        return check.spec, None
    message = policy_invalid_message(name, check)
    log.warning("%s", message)
    return None, message


async def scoped_to_namespace(
    runtime: Any, policy: GrantPolicySpec | None, namespace: str
) -> GrantPolicySpec | None:
    """The policy as it applies to `namespace`: its namespaceSelector resolved against the namespace's
    live labels (policy/selector.py), from the Namespace watch or, before the watch has it, a GET."""
    if policy is None or policy.namespace_selector is None or namespace in policy.namespaces:
        return policy
    watched = getattr(runtime, "namespace_labels", None)
    labels = watched.get(namespace) if isinstance(watched, dict) else None
    if labels is None:
        labels = await read_namespace_labels(getattr(runtime, "own", None), namespace)
    operator_namespace = str(getattr(runtime.settings, "operator_namespace", "jitgrant-system"))
    return policy_for_namespace(policy, namespace, labels, operator_namespace=operator_namespace)


def activity_source(runtime: Any, policy: GrantPolicySpec) -> Any:
    """The audit-log source the trail reads for the policy's target cluster (None: none configured)."""
    reader = getattr(getattr(runtime, "audit", None), "activity", None)
    source_for = getattr(reader, "source_for", None)
    if not callable(source_for):
        return None
    found = source_for(policy.target.cluster)
    if found is None and policy.target.type is TargetType.IN_CLUSTER:
        found = source_for("self")  # the name docs/audit.md gives the operator's own cluster
    return found


async def idle_check(runtime: Any, request: AccessRequest, policy: GrantPolicySpec | None) -> Step | None:
    """For an Active grant under a policy with idleTimeout: its identity's last API call, read from
    the target cluster's audit log, held against the timeout (lifecycle/idle.py). None: nothing to
    change, or the log could not be read (the grant is not ended on a log that did not answer)."""
    if policy is None or policy.idle_timeout is None:
        return None
    source = activity_source(runtime, policy)
    if source is None:
        return None  # refused at apply and not Ready: nothing here could judge it
    try:
        grant = identity_of(request)
    except NoGrant:
        return None
    now = runtime.clock()
    window = Window(start=grant.start, end=now, terms=frozenset({*grant.usernames, grant.binding_name}))
    try:
        calls = await asyncio.to_thread(lambda: activity(source.calls(window), grant))
    except SourceError as error:
        log.warning("idle check of %s/%s: %s", request.metadata.namespace, request.metadata.name, error)
        return None
    last = max((attributed.call.time for attributed in calls), default=None)
    return idle_step(request=request, policy=policy, last_call=last, now=now)


def invalid_policy_step(step: Step, *, problem: str) -> Step:
    """The step to take instead when the policy is invalid: nothing moves toward a grant under it."""
    denial = step.action is Action.DENY and step.reason in _REPLACED_DENIALS
    if step.action in _GRANTWARD or denial:
        return Step(Action.DENY, reason=Reason.POLICY_INVALID, message=problem)
    if step.action is Action.REVOKE and step.reason == Reason.POLICY_CHANGED:
        # A live grant under a policy that no longer parses ends as under a deleted one (an invalid
        # policy allows nothing), saying what is wrong with it rather than "deleted".
        return Step(Action.REVOKE, reason=Reason.POLICY_CHANGED, message=f"{problem}; the grant ended")
    return step


# --- At grant time -----------------------------------------------------------------------------------


async def cluster_role_refusal(
    target: Any, *, policy_name: str, policy: GrantPolicySpec, cluster_role: str | None
) -> str | None:
    """Why the ClusterRole about to be bound may not be, judged on its rules as they are now.

    A ClusterRole that is missing or that the operator may not read is left to the API server, which
    refuses the binding itself (`GrantRefusedByCluster`). Any other error propagates: no grant is
    made on rules that could not be read.
    """
    if cluster_role is None:
        return None
    read = await read_cluster_role(target, cluster_role)
    if not read.found:
        return None
    return widened_reason(
        policy_name=policy_name, policy=policy, cluster_role=cluster_role, rules=rules_of(read.body)
    )


async def grant_refusal(
    target: Any,
    *,
    policy_name: str,
    policy: GrantPolicySpec,
    cluster_wide_deny: Sequence[DenyRule],
    namespace: str,
    cluster_role: str | None,
    inline_rules: Sequence[PolicyRule],
) -> tuple[Reason, str] | None:
    """At grant time, on the rules as they are now: the ClusterRole's (read once) held against the
    dangerous list (`ClusterRoleWidened`), then its or the inline rules against the deny rules
    (`DenyRuleMatched`, policy/deny.py). Read errors propagate as in `cluster_role_refusal`."""
    rules: Sequence[PolicyRule] = inline_rules
    if cluster_role is not None:
        read = await read_cluster_role(target, cluster_role)
        if not read.found:
            return None  # the API server refuses the binding itself (GrantRefusedByCluster)
        rules = rules_of(read.body)
        widened = widened_reason(
            policy_name=policy_name, policy=policy, cluster_role=cluster_role, rules=rules
        )
        if widened is not None:
            return Reason.CLUSTER_ROLE_WIDENED, widened
    denied = grant_deny_reason(
        policy=policy,
        cluster_wide=cluster_wide_deny,
        namespace=namespace,
        cluster_role=cluster_role,
        rules=rules,
    )
    return (Reason.DENY_RULE_MATCHED, denied) if denied is not None else None


# --- The Ready condition -----------------------------------------------------------------------------


async def _role_states(api: Any, spec: GrantPolicySpec) -> list[ClusterRoleState] | str:
    states: list[ClusterRoleState] = []
    for name in policy_cluster_roles(spec):
        read = await read_cluster_role(api, name)
        bindable = await may_bind(api, name)
        if read.found is False:
            states.append(ClusterRoleState(name=name, found=False, bindable=bool(bindable)))
        elif bindable is False:
            states.append(ClusterRoleState(name=name, found=True, bindable=False))
        elif read.found is None or bindable is None:
            return f"the operator cannot read ClusterRole '{name}' to check it"
        else:
            states.append(ClusterRoleState(name=name, found=True, bindable=True, rules=rules_of(read.body)))
    return states


async def issuer_condition(runtime: Any, spec: GrantPolicySpec) -> tuple[str, str, str] | None:
    """Why the policy's OIDC issuers would refuse every token, or None when each names itself as the
    policy does. An issuer written `https://idp/` whose discovery document says `https://idp` (or
    the reverse) looks fine in the policy and refuses every token: the `iss` claim is compared exactly.
    """
    keys = getattr(runtime, "identity_keys", None)
    if keys is None:
        return None
    for index, entry in enumerate(spec.requesters.oidc):
        field = f"requesters.oidc[{index}].issuer"
        try:
            found = await keys.discovery(entry.issuer, ca_bundle=entry.ca_bundle)
        except Exception as exc:  # an IdP that cannot be reached: say so, decide nothing from it
            return "Unknown", Reason.ISSUER_UNAVAILABLE, f"{field}: {exc}"
        if found.issuer != entry.issuer:
            return (
                "False",
                Reason.ISSUER_MISMATCH,
                f"{field} is {entry.issuer!r} but its discovery document names {found.issuer!r}; tokens "
                f"carry the IdP's spelling and are compared exactly, so every one would be refused: "
                f"write {found.issuer!r}",
            )
    return None


async def ready_condition(runtime: Any, body: Mapping[str, Any]) -> tuple[str, str, str]:
    """(status "True"/"False"/"Unknown", reason, message) for the policy as it is now."""
    condition = await _rbac_condition(runtime, body)
    if condition[0] != "True":
        return condition
    check = check_policy(body.get("spec"))
    assert check.spec is not None  # Ready so far means valid
    idle = idle_refusal(check.spec, has_source=activity_source(runtime, check.spec) is not None)
    if idle is not None:  # stored past the webhook: say so rather than never ending an idle grant
        return "False", Reason.POLICY_INVALID, idle
    return await issuer_condition(runtime, check.spec) or condition


async def _rbac_condition(runtime: Any, body: Mapping[str, Any]) -> tuple[str, str, str]:
    name = str((body.get("metadata") or {}).get("name") or "")
    check = check_policy(body.get("spec"))
    if not check.valid or check.spec is None:
        result = readiness(policy_name=name, check=check, roles=())
        return "False", result.reason, result.message
    if check.spec.target.type is not TargetType.IN_CLUSTER:
        # A remote target is reached only under a request's own role session (so its CloudTrail and
        # audit log name the request) or the sweep's; its ClusterRoles are checked at grant time.
        cluster = check.spec.target.cluster
        return "True", Reason.POLICY_READY, f"valid; ClusterRoles in {cluster} are checked at grant time"
    try:
        api = await runtime.housekeeping_cluster(check.spec.target)
        states = await _role_states(api, check.spec)
    except Exception as exc:  # an unreachable target: say so, and decide nothing from it
        return "Unknown", Reason.TARGET_UNAVAILABLE, f"cannot check the target cluster: {exc}"
    if isinstance(states, str):
        return "Unknown", Reason.CLUSTER_ROLE_NOT_BINDABLE, states
    deny = getattr(runtime.settings, "deny_rules", ())
    result = readiness(policy_name=name, check=check, roles=states, cluster_wide_deny=deny)
    return ("True" if result.ready else "False"), result.reason, result.message


def _status_patch(
    body: Mapping[str, Any], condition: tuple[str, str, str], now: str
) -> dict[str, Any] | None:
    """The status to write, or None when it already says this (so our own write does not loop)."""
    status_text, reason, message = condition
    generation = (body.get("metadata") or {}).get("generation")
    current = body.get("status") or {}
    previous = next((c for c in current.get("conditions") or () if c.get("type") == READY), None)
    same = previous is not None and (
        previous.get("status"),
        previous.get("reason"),
        previous.get("message"),
    ) == (
        status_text,
        reason,
        message[:1000],
    )
    if same and current.get("observedGeneration") == generation:
        return None
    changed = previous is None or previous.get("status") != status_text
    since = now if changed or previous is None else previous.get("lastTransitionTime", now)
    entry = {
        "type": READY,
        "status": status_text,
        "reason": str(reason),
        "message": message[:1000],
        "lastTransitionTime": since,
    }
    return {"observedGeneration": generation, "conditions": [entry]}


def _standby(runtime: Any) -> bool:
    """A replica that does not hold the Lease leaves the status to the leader."""
    election = getattr(runtime.own, "election", None)
    holds = getattr(election, "holds", None)
    return callable(holds) and not holds()


async def refresh_status(runtime: Any, body: Mapping[str, Any]) -> None:
    name = str((body.get("metadata") or {}).get("name") or "")
    # Derived from the spec alone, so every replica exports the same value (no stale standby).
    _set_exposure(runtime, name, body)
    if _standby(runtime):
        return
    condition = await ready_condition(runtime, body)
    patch = _status_patch(body, condition, format_time(runtime.clock()))
    if patch is not None:
        await patch_policy_status(runtime.own, name, patch)
        log.info("GrantPolicy %s: Ready=%s (%s) %s", name, *condition)


def _set_exposure(runtime: Any, name: str, body: Mapping[str, Any] | None) -> None:
    """jitgrant_policy_dangerous_identities_without_approval for this policy (no series once it is
    deleted or invalid)."""
    metrics = getattr(runtime, "metrics", None)
    if metrics is None:
        return
    check = check_policy(body.get("spec")) if body is not None else None
    valid = check is not None and check.valid and check.spec is not None
    counts = dangerous_without_approval(check.spec) if valid and check and check.spec else {}
    metrics.set_policy_exposure(policy=name, counts=counts)


async def recheck_forever(runtime: Any, *, interval: float | None = None) -> None:
    """ClusterRoles change without their policies changing: look again every `interval` seconds."""
    await runtime.started.wait()
    while not runtime.stopping:
        try:
            for body in await list_policies(runtime.own):
                await refresh_status(runtime, body)
        except Exception:
            log.exception("re-checking GrantPolicies failed; will retry")
        await asyncio.sleep(interval or RECHECK_SECONDS)


# --- kopf registrations -------------------------------------------------------------------------------


@kopf.on.event(*_RESOURCE, id=STATUS_ID)
async def policy_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        return
    if type == "DELETED":
        _set_exposure(runtime, str(body.metadata.name or ""), None)
        return
    try:
        await refresh_status(runtime, body)
    except Exception:
        log.exception("writing the status of GrantPolicy %s failed", body.metadata.name)


@kopf.on.startup(id="start-policy-recheck")
async def start_policy_recheck(memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        memo[_TASK_KEY] = asyncio.create_task(recheck_forever(runtime), name="jitgrant-policy-recheck")


@kopf.on.cleanup(id="stop-policy-recheck")
async def stop_policy_recheck(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get(_TASK_KEY)
    if isinstance(task, asyncio.Task):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
