"""A ClusterRole named by a policy is bound by reference: whatever its rules say at grant time is
what the agent gets. Someone who can edit the ClusterRole after the policy was written (adding
`get secrets`, say) would widen every grant under that policy without touching it. So at grant time
the live rules are held against the same dangerous list as inline rules, and any dangerous entry the
policy did not accept for that ClusterRole (`grants[].acceptDangerous`) refuses the grant.

Pure: the handler reads the ClusterRole and passes its rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jitgrant.models import GrantPolicySpec, PolicyRule
from jitgrant.policy.dangerous import DangerousPart, dangerous_parts
from jitgrant.policy.rbac import Permission, breakdown


def rules_of(cluster_role: Mapping[str, Any]) -> tuple[PolicyRule, ...]:
    """The resource rules of a ClusterRole object (camelCase, as the API returns it).

    Rules with only nonResourceURLs are left out: a RoleBinding never grants those.
    """
    rules: list[PolicyRule] = []
    for raw in cluster_role.get("rules") or ():
        if not isinstance(raw, Mapping):
            continue
        groups = tuple(raw.get("apiGroups") or raw.get("api_groups") or ())
        resources = tuple(raw.get("resources") or ())
        verbs = tuple(raw.get("verbs") or ())
        if not (groups and resources and verbs):
            continue
        names = tuple(raw.get("resourceNames") or raw.get("resource_names") or ())
        rules.append(PolicyRule(api_groups=groups, resources=resources, verbs=verbs, resource_names=names))
    return tuple(rules)


def accepted_for(policy: GrantPolicySpec, cluster_role: str) -> frozenset[str]:
    """The dangerous entries the policy accepts in this ClusterRole (over every entry naming it)."""
    return frozenset(
        entry
        for option in policy.grants
        if option.cluster_role == cluster_role
        for entry in option.accept_dangerous
    )


def unaccepted_dangers(
    rules: Sequence[PolicyRule], accepted: Iterable[str]
) -> tuple[tuple[Permission, DangerousPart], ...]:
    """Each dangerous part of the rules' permissions whose entry the policy did not accept."""
    allowed = frozenset(accepted)
    found: dict[tuple[Permission, DangerousPart], None] = {}
    for rule in rules:
        for permission in breakdown(rule):
            for part in dangerous_parts(permission):
                if part.entry not in allowed:
                    found[(permission, part)] = None
    return tuple(found)


def _describe(dangers: Sequence[tuple[Permission, DangerousPart]]) -> str:
    by_entry: dict[tuple[str, str], tuple[DangerousPart, list[str]]] = {}
    for permission, part in dangers:
        _, verbs = by_entry.setdefault((part.position, part.entry), (part, []))
        if permission.verb not in verbs:
            verbs.append(permission.verb)
    return "; ".join(
        f"{part.position} '{part.entry}' (verbs {', '.join(verbs)}: {part.why})"
        for part, verbs in by_entry.values()
    )


def widened_reason(
    *, policy_name: str, policy: GrantPolicySpec, cluster_role: str, rules: Sequence[PolicyRule]
) -> str | None:
    """None if the ClusterRole's live rules hold nothing dangerous the policy did not accept."""
    dangers = unaccepted_dangers(rules, accepted_for(policy, cluster_role))
    if not dangers:
        return None
    entries = ", ".join(dict.fromkeys(part.entry for _, part in dangers))
    return (
        f"ClusterRole '{cluster_role}' holds dangerous permissions policy {policy_name} does not accept: "
        f"{_describe(dangers)}. Narrow the ClusterRole, or add [{entries}] to acceptDangerous of its "
        f"grants entry in policy {policy_name} if the platform team means to grant them"
    )
