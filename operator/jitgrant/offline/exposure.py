"""`jitgrant who-can` and `jitgrant exposure`: who could obtain what through which GrantPolicy.

Computed from the policies and ClusterRoles on file with the decision's own building blocks:
`requester_matches` (is this identity a requester), the namespace rule `decide` applies ("*" is any
non-system namespace), RBAC coverage (`rule_covers`) and the dangerous list (`dangerous_parts`).
It complements `kubectl auth can-i --list`, which sees only standing access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from jitgrant.identity.claims import oidc_username
from jitgrant.identity.stamp import requester_from_userinfo
from jitgrant.models import AccessRequest, GrantPolicySpec, Phase, PolicyRule, ProofKind, RequesterStamp
from jitgrant.offline.loader import Manifests
from jitgrant.policy import (
    DEFAULT_OPERATOR_NAMESPACE,
    Permission,
    breakdown,
    dangerous_parts,
    describe_scope,
    is_system_namespace,
    requester_matches,
)
from jitgrant.policy.rbac import name_covers, resource_covers, rule_covers, verb_covers

AUTHENTICATED = "system:authenticated"


class IdentityKind(StrEnum):
    SERVICE_ACCOUNT = "ServiceAccount"
    USER = "User"
    GROUP = "Group"
    OIDC_SUBJECT = "OIDCSubject"
    OIDC_GROUP = "OIDCGroup"


@dataclass(frozen=True)
class Identity:
    """A subject or group some policy names, with the stamp the webhook would give a member of it."""

    kind: IdentityKind
    name: str
    stamp: RequesterStamp

    @property
    def label(self) -> str:
        return self.name if self.kind is not IdentityKind.GROUP else f"group:{self.name}"


@dataclass(frozen=True)
class Route:
    """One way an identity could obtain a grant: a policy, one of its grants, and the conditions."""

    identity: Identity
    policy: str
    grant: str  # "ClusterRole NAME" or "inline rules"
    rules: tuple[PolicyRule, ...] | None  # None: a ClusterRole not on file
    namespaces: tuple[str, ...]
    approvals: int  # 0: automatically
    approvers: tuple[str, ...]
    max_duration: str
    dangerous: tuple[str, ...]

    @property
    def approval_text(self) -> str:
        return "none" if not self.approvals else f"{self.approvals} of {', '.join(self.approvers)}"


def policy_identities(spec: GrantPolicySpec) -> list[Identity]:
    """Every subject and group one policy names as a requester, with a member's stamp."""
    found: list[Identity] = []
    people = spec.requesters
    for sa in people.service_accounts:
        userinfo = {
            "username": sa.username,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{sa.namespace}", AUTHENTICATED],
        }
        found.append(Identity(IdentityKind.SERVICE_ACCOUNT, sa.username, requester_from_userinfo(userinfo)))
    for user in people.users:
        found.append(
            Identity(IdentityKind.USER, user, RequesterStamp(username=user, groups=(AUTHENTICATED,)))
        )
    for group in people.groups:
        # Any member: known only by the group (the empty username matches no user entry).
        stamp = RequesterStamp(username="", groups=(group, AUTHENTICATED))
        found.append(Identity(IdentityKind.GROUP, group, stamp))
    for entry in people.oidc:
        for subject in entry.subjects:
            name = oidc_username(issuer=entry.issuer, subject=subject)
            stamp = RequesterStamp(
                username=name, proven_by=ProofKind.OIDC, issuer=entry.issuer, subject=subject
            )
            found.append(Identity(IdentityKind.OIDC_SUBJECT, name, stamp))
        for group in entry.groups:
            name = f"oidc:{entry.issuer}#group:{group}"
            stamp = RequesterStamp(
                username=name,
                groups=(group,),
                proven_by=ProofKind.OIDC,
                issuer=entry.issuer,
                subject="(any member)",
            )
            found.append(Identity(IdentityKind.OIDC_GROUP, name, stamp))
    return found


def identities(manifests: Manifests) -> list[Identity]:
    """Every subject and group named as a requester in any valid policy, each once."""
    found: dict[tuple[IdentityKind, str], Identity] = {}
    for loaded in manifests.policies.values():
        if loaded.check.spec is not None and loaded.check.valid:
            for identity in policy_identities(loaded.check.spec):
                found.setdefault((identity.kind, identity.name), identity)
    return sorted(found.values(), key=lambda i: (i.kind, i.name))


def dangerous_without_approval(spec: GrantPolicySpec) -> dict[str, int]:
    """Per dangerous entry the policy lets be granted without a human, how many distinct identities
    (subjects and groups it names) could obtain it. A ClusterRole counts with the entries its grants
    entry accepts (any other dangerous rule refuses the grant: ClusterRoleWidened); inline rules with
    the entries they name. The policy's statement, an upper bound of what its ClusterRoles hold."""
    if spec.approval.required:
        return {}
    entries: set[str] = set()
    for option in spec.grants:
        entries.update(option.accept_dangerous)
        entries.update(_dangerous(option.rules or ()))
    count = len({(i.kind, i.name) for i in policy_identities(spec)})
    return {entry: count for entry in sorted(entries)}


def _dangerous(rules: Iterable[PolicyRule]) -> tuple[str, ...]:
    return tuple(
        sorted({part.entry for rule in rules for perm in breakdown(rule) for part in dangerous_parts(perm)})
    )


def _routes_of(identity: Identity, name: str, spec: GrantPolicySpec, manifests: Manifests) -> list[Route]:
    if not requester_matches(spec.requesters, identity.stamp):
        return []
    approval = spec.approval
    people = approval.approvers
    approvers = tuple([*(f"group {g}" for g in people.groups), *(f"user {u}" for u in people.users)])
    routes = []
    for option in spec.grants:
        rules = (
            option.rules
            if option.rules is not None
            else manifests.cluster_roles.get(option.cluster_role or "")
        )
        grant = (
            f"ClusterRole {option.cluster_role}"
            if option.cluster_role
            else "inline rules (inline-rules mode)"
        )
        routes.append(
            Route(
                identity=identity,
                policy=name,
                grant=grant,
                rules=rules,
                # A namespaceSelector's labels are unknown offline: it may reach any non-system one.
                namespaces=(*spec.namespaces, "*")
                if spec.namespace_selector is not None
                else spec.namespaces,
                approvals=approval.min_approvals if approval.required else 0,
                approvers=approvers if approval.required else (),
                max_duration=spec.max_duration,
                dangerous=_dangerous(rules or ()),
            )
        )
    return routes


def routes(manifests: Manifests, only: Sequence[str] = ()) -> list[Route]:
    """Every route of every identity (or of those whose label or name is in `only`)."""
    found: list[Route] = []
    for identity in identities(manifests):
        if only and identity.name not in only and identity.label not in only:
            continue
        for loaded in sorted(manifests.policies.values(), key=lambda p: p.name):
            if loaded.check.spec is not None and loaded.check.valid:
                found += _routes_of(identity, loaded.name, loaded.check.spec, manifests)
    return found


def namespace_allowed(namespaces: Sequence[str], namespace: str, operator_namespace: str) -> bool:
    """The decision's namespace rule: listed by name, or "*" and not a system namespace."""
    if namespace in namespaces:
        return True
    return "*" in namespaces and not is_system_namespace(namespace, operator_namespace)


def parse_resource(text: str) -> tuple[str, str | None]:
    """`deployments.apps/scale` -> ("deployments/scale", "apps"); no group given -> any group."""
    base, _, sub = text.partition("/")
    resource, _, group = base.partition(".")
    return (f"{resource}/{sub}" if sub else resource), (group or None)


def _covers(rule: PolicyRule, verb: str, resource: str, group: str | None, name: str | None) -> bool:
    if group is not None:
        return rule_covers(
            rule, Permission(api_group=group, resource=resource, verb=verb, resource_name=name)
        )
    return resource_covers(rule, resource) and verb_covers(rule, verb) and name_covers(rule, name)


def who_can(
    manifests: Manifests,
    *,
    verb: str,
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    operator_namespace: str = DEFAULT_OPERATOR_NAMESPACE,
) -> list[Route]:
    """Every route through which some identity could obtain `verb` on `resource`."""
    wanted, group = parse_resource(resource)
    return [
        route
        for route in routes(manifests)
        if route.rules is not None
        and any(_covers(rule, verb, wanted, group, name) for rule in route.rules)
        and (namespace is None or namespace_allowed(route.namespaces, namespace, operator_namespace))
    ]


def rules_text(rules: tuple[PolicyRule, ...] | None) -> str:
    if rules is None:
        return "(ClusterRole not on file)"
    parts = []
    for rule in rules:
        groups = ",".join(g or "core" for g in rule.api_groups)
        names = f" [{','.join(rule.resource_names)}]" if rule.resource_names else ""
        parts.append(f"{','.join(rule.verbs)} {','.join(rule.resources)}.{groups}{names}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Held:
    """A grant an identity holds right now: an Active AccessRequest."""

    requester: str
    request: str  # NAMESPACE/NAME
    policy: str
    scope: str
    namespace: str
    expires_at: str


def active_grants(manifests: Manifests, only: Sequence[str] = ()) -> list[Held]:
    """Active AccessRequests (status read from the cluster, or from files), by requester."""
    held = []
    for raw in manifests.requests:
        status = raw.get("status") or {}
        if status.get("phase") != Phase.ACTIVE:
            continue
        try:
            request = AccessRequest.from_object(raw)
        except ValidationError:
            continue
        requester = request.spec.requester.username if request.spec.requester is not None else ""
        if only and requester not in only:
            continue
        expires = request.status.expires_at
        held.append(
            Held(
                requester=requester,
                request=f"{request.metadata.namespace}/{request.metadata.name}",
                policy=request.spec.policy,
                scope=describe_scope(request.spec),
                namespace=request.spec.namespace,
                expires_at=expires.isoformat() if expires is not None else "",
            )
        )
    return sorted(held, key=lambda h: (h.requester, h.request))


def route_key(route: Route) -> tuple[str, ...]:
    """What makes two routes the same: everything a reviewer reads, not where the file was."""
    return (
        route.identity.label,
        route.policy,
        route.grant,
        ",".join(route.namespaces),
        route.approval_text,
        route.max_duration,
        rules_text(route.rules),
    )


def diff_routes(old: Manifests, new: Manifests) -> tuple[list[Route], list[Route]]:
    """(added, removed): the routes an edit of the policies (or ClusterRoles) opens and closes."""
    before = {route_key(r): r for r in routes(old)}
    after = {route_key(r): r for r in routes(new)}
    added = [after[key] for key in sorted(after.keys() - before.keys())]
    removed = [before[key] for key in sorted(before.keys() - after.keys())]
    return added, removed
