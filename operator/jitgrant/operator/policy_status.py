"""GrantPolicy status.

The policy as the reconciler sees it (the policy a request names, the ClusterRole's live rules at grant
time) is in `reconcile/policies.py`; the step an invalid policy turns into, in `lifecycle/final_step.py`.

- The `Ready` condition in `status` (what `kubectl get gp` shows): valid, each ClusterRole exists,
  the operator may bind it, and it holds nothing dangerous the policy did not accept; and each OIDC
  issuer's discovery document names the issuer exactly as the policy does. Written when a
  policy changes and re-checked every `RECHECK_SECONDS`, since a ClusterRole can change under it.
  The status is a view: requests are decided on the live checks above, never on a cached condition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from jitgrant.clusters.port import GrantTarget
from jitgrant.lifecycle.idle import idle_refusal
from jitgrant.models import API_GROUP, API_VERSION, GrantPolicySpec, TargetType
from jitgrant.models.vocabulary import READY_CONDITION, Reason, format_time
from jitgrant.offline.exposure import dangerous_without_approval
from jitgrant.policy import ClusterRoleState, check_policy, readiness, rules_of
from jitgrant.policy.scope import policy_cluster_roles
from jitgrant.reconcile.guardrails import activity_source

log = logging.getLogger("jitgrant.policy_status")

READY = READY_CONDITION
RECHECK_SECONDS = 30.0
STATUS_ID = "policy-status"
_RESOURCE = (API_GROUP, API_VERSION, "grantpolicies")
_TASK_KEY = "policy_recheck_task"

# --- The Ready condition -----------------------------------------------------------------------------


async def _role_states(api: GrantTarget, spec: GrantPolicySpec) -> list[ClusterRoleState] | str:
    states: list[ClusterRoleState] = []
    for name in policy_cluster_roles(spec):
        read = await api.read_cluster_role(name)
        bindable = await api.may_bind(name)
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
    deny = runtime.settings.deny_rules
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
        await runtime.own.patch_policy_status(name, patch)
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
            for body in await runtime.own.list_policy_objects():
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
