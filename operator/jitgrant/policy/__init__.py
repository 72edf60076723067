"""Pure policy decisions: does an AccessRequest fit a GrantPolicy, which rules, how long, and if not,
every reason why. No I/O: the handlers fetch the objects and act on the decision."""

from jitgrant.policy.dangerous import (
    DANGEROUS_RESOURCES,
    DANGEROUS_VERBS,
    SYSTEM_NAMESPACES,
    DangerousPart,
    dangerous_parts,
    is_system_namespace,
    system_namespaces,
)
from jitgrant.policy.decision import DEFAULT_OPERATOR_NAMESPACE, PolicyDecision, decide
from jitgrant.policy.rbac import Permission, breakdown, rules_cover, uncovered_permissions
from jitgrant.policy.requesters import requester_matches
from jitgrant.policy.scope import describe_scope, granting_rules

__all__ = [
    "DANGEROUS_RESOURCES",
    "DANGEROUS_VERBS",
    "DEFAULT_OPERATOR_NAMESPACE",
    "SYSTEM_NAMESPACES",
    "DangerousPart",
    "Permission",
    "PolicyDecision",
    "breakdown",
    "dangerous_parts",
    "decide",
    "describe_scope",
    "granting_rules",
    "is_system_namespace",
    "requester_matches",
    "rules_cover",
    "system_namespaces",
    "uncovered_permissions",
]
