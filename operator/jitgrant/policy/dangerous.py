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

# The list follows the Kubernetes "Role Based Access Control Good Practices" page
# (https://kubernetes.io/docs/concepts/security/rbac-good-practices/, "Kubernetes RBAC - privilege
# escalation risks" and "Persistence"): every entry below is a way to step outside RBAC, to get
# another identity's credentials or a shell, or to leave something behind that outlives the grant.
# docs/identity-and-approvals.md lists the same entries with the paragraph each comes from.

# Verbs that let the holder step outside RBAC itself.
DANGEROUS_VERBS: dict[str, str] = {
    "escalate": "lets the holder write roles with permissions it does not have",
    "bind": "lets the holder bind roles it does not hold",
    "impersonate": "lets the holder act as another identity",
    "approve": "lets the holder approve certificate signing requests (signers), i.e. mint credentials",
    "sign": "lets the holder sign certificates for any identity the signer serves",
}

# Resources (any API group) dangerous under every verb: credentials, a shell, another identity.
DANGEROUS_RESOURCES: dict[str, str] = {
    "secrets": "exposes credentials",
    "pods/exec": "runs commands inside containers",
    "pods/attach": "attaches to running containers",
    "pods/portforward": "opens connections into pods",
    "pods/proxy": "reaches any port of a pod through the API server",
    "pods/ephemeralcontainers": "adds a container, with a shell, to a running pod",
    "services/proxy": "reaches any port of a service through the API server",
    "nodes/proxy": "reaches the kubelet API",
    "serviceaccounts/token": "mints tokens for other ServiceAccounts",
    "certificatesigningrequests/approval": "approves certificate signing requests, i.e. mints credentials",
}

_WRITE = frozenset({"create", "update", "patch"})
_WRITE_OR_DELETE = _WRITE | {"delete", "deletecollection"}

# Resources (any API group) dangerous only under some verbs: writing RBAC or admission control,
# minting certificates, mounting host paths, deleting or relabelling namespaces.
DANGEROUS_WRITES: dict[str, tuple[frozenset[str], str]] = {
    "roles": (_WRITE, "writes RBAC that outlives the grant"),
    "rolebindings": (_WRITE, "writes RBAC that outlives the grant"),
    "clusterroles": (_WRITE, "writes RBAC that outlives the grant"),
    "clusterrolebindings": (_WRITE, "writes RBAC that outlives the grant"),
    "certificatesigningrequests": (_WRITE, "requests client certificates that outlive the grant"),
    "mutatingwebhookconfigurations": (_WRITE_OR_DELETE, "controls or disables admission"),
    "validatingwebhookconfigurations": (_WRITE_OR_DELETE, "controls or disables admission"),
    "validatingadmissionpolicies": (_WRITE_OR_DELETE, "controls or disables admission"),
    "validatingadmissionpolicybindings": (_WRITE_OR_DELETE, "controls or disables admission"),
    "mutatingadmissionpolicies": (_WRITE_OR_DELETE, "controls or disables admission"),
    "mutatingadmissionpolicybindings": (_WRITE_OR_DELETE, "controls or disables admission"),
    "customresourcedefinitions": (_WRITE_OR_DELETE, "changes what the API serves and validates"),
    "persistentvolumes": (_WRITE, "can mount any host path into a pod"),
    "namespaces": (
        _WRITE_OR_DELETE - {"create"},
        "deletes everything in a namespace or relabels it past Pod Security admission",
    ),
}

# Every entry a policy can accept (GrantOption.acceptDangerous) or must name literally.
DANGEROUS_ENTRIES: frozenset[str] = frozenset(
    {WILDCARD, *DANGEROUS_VERBS, *DANGEROUS_RESOURCES, *DANGEROUS_WRITES}
)


class Position(StrEnum):
    """Which list of a rule a dangerous entry sits in."""

    API_GROUP = "apiGroup"
    RESOURCE = "resource"
    VERB = "verb"


@dataclass(frozen=True)
class DangerousPart:
    """One dangerous entry of a requested permission, which the policy must name literally.

    `verb` is set for a resource dangerous only under some verbs (create on roles): the policy rule
    must then name that verb literally as well, so `verbs: ["*"]` on `roles` does not opt in to create.
    """

    position: Position
    entry: str
    why: str
    verb: str | None = None


def _resource_danger(resource: str) -> str | None:
    if resource == WILDCARD or resource.startswith(f"{WILDCARD}/"):
        return "is a wildcard"
    if resource in DANGEROUS_RESOURCES:
        return DANGEROUS_RESOURCES[resource]
    base = resource.partition("/")[0]
    if base == "secrets":  # every subresource of secrets counts as secrets
        return DANGEROUS_RESOURCES["secrets"]
    return None


def _write_danger(resource: str, verb: str) -> DangerousPart | None:
    danger = DANGEROUS_WRITES.get(resource)
    if danger is None:
        return None
    verbs, why = danger
    if verb == WILDCARD:  # the wildcard verb is its own dangerous part; the resource must be literal
        return DangerousPart(Position.RESOURCE, resource, f"{'/'.join(sorted(verbs))} {why}")
    if verb in verbs:
        return DangerousPart(Position.RESOURCE, resource, f"{verb} {why}", verb=verb)
    return None


def dangerous_parts(permission: Permission) -> tuple[DangerousPart, ...]:
    """The entries of an atomic permission that a policy must name literally to grant it."""
    parts: list[DangerousPart] = []
    if permission.api_group == WILDCARD:
        parts.append(DangerousPart(Position.API_GROUP, WILDCARD, "is a wildcard"))
    resource_why = _resource_danger(permission.resource)
    if resource_why is not None:
        parts.append(DangerousPart(Position.RESOURCE, permission.resource, resource_why))
    else:
        write = _write_danger(permission.resource, permission.verb)
        if write is not None:
            parts.append(write)
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
    return part.entry in entries and (part.verb is None or part.verb in rule.verbs)


def system_namespaces(operator_namespace: str) -> frozenset[str]:
    """Namespaces a grant may land in only when the policy lists them by name."""
    return SYSTEM_NAMESPACES | {operator_namespace}


def is_system_namespace(namespace: str, operator_namespace: str) -> bool:
    return namespace in system_namespaces(operator_namespace)
