"""The policy as the reconciler sees it: the policy a request names (or why it cannot be used), and at
grant time the live rules of the ClusterRole about to be bound.

A policy that does not parse or fails `check_policy` is *invalid*, not missing: its requests are denied
as `PolicyInvalid` with the field and the fix (`lifecycle/final_step.py`). Anything the policy did not
accept in a ClusterRole's rules as they are now refuses the grant (`ClusterRoleWidened`).
"""

from __future__ import annotations

import logging

from jitgrant.clusters.port import GrantTarget, RequestStore
from jitgrant.models import GrantPolicySpec
from jitgrant.policy import check_policy, rules_of, widened_reason

log = logging.getLogger("jitgrant.policy_status")


async def load_policy(own: RequestStore, name: str) -> tuple[GrantPolicySpec | None, str | None]:
    """(spec, None) for a usable policy, (None, None) when it does not exist, (None, why) when invalid."""
    stored = await own.get_policy(name)
    if stored is None:
        return None, None
    check = check_policy(stored.spec)
    if check.valid:
        return check.spec, None
    message = f"GrantPolicy {name!r} is invalid: {check.message}; the platform team must fix it"
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
