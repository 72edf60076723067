"""The policy as the reconciler sees it: the policy a request names (or why it cannot be used), and at
grant time the live rules of the ClusterRole about to be bound.

A policy that does not parse or fails `check_policy` is *invalid*, not missing: its requests are denied
as `PolicyInvalid` with the field and the fix (`lifecycle/final_step.py`). Anything the policy did not
accept in a ClusterRole's rules as they are now refuses the grant (`ClusterRoleWidened`).

Policies come from the operator's watch on GrantPolicies (`watched`, parsed as they arrive) and only
a name the watch has not delivered (not listed yet, missing, or not parsing) is read with a GET. The
cache is as fresh as the watch: a policy changed after a pass read it is caught by the watch event,
which makes every live request under it due again (reactor/scheduler.py `policy_changed`), so a
grant made under the old spec is held against the new one within the watch's lag, as it was when a
GET could race the change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from jitgrant.clusters.port import GrantTarget, RequestStore
from jitgrant.models import DenyRule, GrantPolicySpec, PolicyRule
from jitgrant.models.vocabulary import Reason
from jitgrant.policy import PolicyCheck, check_policy, rules_of, widened_reason
from jitgrant.policy.deny import grant_deny_reason
from jitgrant.policy.gate import policy_invalid_message
from jitgrant.policy.validation import lint

log = logging.getLogger("jitgrant.policy_status")


async def load_policy(
    own: RequestStore, name: str, watched: Mapping[str, GrantPolicySpec]
) -> tuple[GrantPolicySpec | None, str | None]:
    """(spec, None) for a usable policy, (None, None) when it does not exist, (None, why) when invalid."""
    cached = watched.get(name)
    if cached is not None:
        check = PolicyCheck(spec=cached, problems=lint(cached))
    else:
        stored = await own.get_policy(name)
        if stored is None:
            return None, None
        check = check_policy(stored.spec)
    if check.valid:
        return check.spec, None
    message = policy_invalid_message(name, check)
    log.warning("%s", message)
    return None, message


async def cluster_role_refusal(
    target: GrantTarget, *, policy_name: str, policy: GrantPolicySpec, cluster_role: str | None
) -> str | None:
    """Why the ClusterRole about to be bound may not be, judged on its rules as they are now.

    A ClusterRole that is missing or that the operator may not read is left to the API server, which
    refuses the binding itself (`GrantRefusedByCluster`). Any other error propagates: no grant is
    made on rules that could not be read.
    """
    if cluster_role is None:
        return None
    read = await target.read_cluster_role(cluster_role)
    if not read.found:
        return None
    return widened_reason(
        policy_name=policy_name, policy=policy, cluster_role=cluster_role, rules=rules_of(read.body)
    )


async def grant_refusal(
    target: GrantTarget,
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
        read = await target.read_cluster_role(cluster_role)
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


async def policy_spec(
    own: RequestStore, name: str, watched: Mapping[str, GrantPolicySpec]
) -> GrantPolicySpec | None:
    """The named policy's spec from the watch, else read (None: missing or does not parse): the
    ending and retention paths, which need its target and not its lint."""
    cached = watched.get(name)
    if cached is not None:
        return cached
    stored = await own.get_policy(name)
    if stored is None:
        return None
    check = check_policy(stored.spec)
    return check.spec
