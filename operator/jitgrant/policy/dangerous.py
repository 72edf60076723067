"""Permissions too powerful to grant through a wildcard, and namespaces too central to grant into.

The rule: a requested dangerous permission passes only if a policy rule that covers it names the
dangerous part literally. A policy `verbs: ["*"]` covers `escalate` by RBAC semantics, but a platform
team writing "*" rarely means "and also let the agent grant itself anything"; they must write
`escalate` to mean it. The same holds for namespaces: "*" in a policy's namespaces never includes a
system namespace.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jitgrant.models import PolicyRule
from jitgrant.policy.rbac import WILDCARD, Permission

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# Verbs that let the holder step outside RBAC itself.
DANGEROUS_VERBS: dict[str, str] = {
    "escalate": "lets the holder write roles with permissions it does not have",
    "bind": "lets the holder bind roles it does not hold",
    "impersonate": "lets the holder act as another identity",
}

# Resources (any API group) whose access amounts to credentials or a shell. pods/attach,
# pods/portforward and serviceaccounts/token are beyond the list: they give the same power
# as pods/exec (a live process) and impersonate (another identity's token).
DANGEROUS_RESOURCES: dict[str, str] = {
    "secrets": "exposes credentials",
    "pods/exec": "runs commands inside containers",
    "pods/attach": "attaches to running containers",
    "pods/portforward": "opens connections into pods",
    "nodes/proxy": "reaches the kubelet API",
    "serviceaccounts/token": "mints tokens for other ServiceAccounts",
}


class Position(StrEnum):
    """Which list of a rule a dangerous entry sits in."""

    API_GROUP = "apiGroup"
    RESOURCE = "resource"
    VERB = "verb"


@dataclass(frozen=True)
class DangerousPart:
    """One dangerous entry of a requested permission, which the policy must name literally."""

    position: Position
    entry: str
    why: str


def _resource_danger(resource: str) -> str | None:
    if resource == WILDCARD or resource.startswith(f"{WILDCARD}/"):
        return "is a wildcard"
    if resource in DANGEROUS_RESOURCES:
        return DANGEROUS_RESOURCES[resource]
    base = resource.partition("/")[0]
    if base == "secrets":  # every subresource of secrets counts as secrets
        return DANGEROUS_RESOURCES["secrets"]
    return None


def dangerous_parts(permission: Permission) -> tuple[DangerousPart, ...]:
    """The entries of an atomic permission that a policy must name literally to grant it."""
    parts: list[DangerousPart] = []
    if permission.api_group == WILDCARD:
        parts.append(DangerousPart(Position.API_GROUP, WILDCARD, "is a wildcard"))
    resource_why = _resource_danger(permission.resource)
    if resource_why is not None:
        parts.append(DangerousPart(Position.RESOURCE, permission.resource, resource_why))
    if permission.verb == WILDCARD:
        parts.append(DangerousPart(Position.VERB, WILDCARD, "is a wildcard"))
    elif permission.verb in DANGEROUS_VERBS:
        parts.append(DangerousPart(Position.VERB, permission.verb, DANGEROUS_VERBS[permission.verb]))
    return tuple(parts)


def names_literally(rule: PolicyRule, part: DangerousPart) -> bool:
    """Whether the rule lists this exact entry (a wildcard in the rule does not count)."""
    entries = {
        Position.API_GROUP: rule.api_groups,
        Position.RESOURCE: rule.resources,
        Position.VERB: rule.verbs,
    }[part.position]
    return part.entry in entries


def system_namespaces(operator_namespace: str) -> frozenset[str]:
    """Namespaces a grant may land in only when the policy lists them by name."""
    return SYSTEM_NAMESPACES | {operator_namespace}


def is_system_namespace(namespace: str, operator_namespace: str) -> bool:
    return namespace in system_namespaces(operator_namespace)
