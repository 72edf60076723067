"""Pure policy decisions: does an AccessRequest fit a GrantPolicy, which rules, how long, and if not,
every reason why. No I/O: the handlers fetch the objects and act on the decision."""

from jitgrant.policy.cluster_roles import rules_of, widened_reason
from jitgrant.policy.dangerous import (
    DANGEROUS_ENTRIES,
    DANGEROUS_RESOURCES,
    DANGEROUS_VERBS,
    DANGEROUS_WRITES,
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
from jitgrant.policy.validation import ClusterRoleState, PolicyCheck, Readiness, check_policy, readiness

__all__ = [
    "DANGEROUS_ENTRIES",
    "DANGEROUS_RESOURCES",
    "DANGEROUS_VERBS",
    "DANGEROUS_WRITES",
    "DEFAULT_OPERATOR_NAMESPACE",
    "SYSTEM_NAMESPACES",
    "ClusterRoleState",
    "DangerousPart",
    "Permission",
    "PolicyCheck",
    "PolicyDecision",
    "Readiness",
    "breakdown",
    "check_policy",
    "dangerous_parts",
    "decide",
    "describe_scope",
    "granting_rules",
    "is_system_namespace",
    "readiness",
    "requester_matches",
    "rules_cover",
    "rules_of",
    "system_namespaces",
    "uncovered_permissions",
    "widened_reason",
]
