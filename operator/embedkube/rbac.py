"""The RBAC authorizer and privilege-escalation prevention, after plugin/pkg/auth/authorizer/rbac
and pkg/registry/rbac/validation of the real API server.

Rules come from the Role/ClusterRole/RoleBinding/ClusterRoleBinding objects in the store, read at
every check (no cache), so a deleted binding stops granting immediately.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .authn import MASTERS, User
from .resources import RBAC
from .store import Store

Rule = Mapping[str, Any]

ROLES = (RBAC, "roles")
CLUSTER_ROLES = (RBAC, "clusterroles")
ROLE_BINDINGS = (RBAC, "rolebindings")
CLUSTER_ROLE_BINDINGS = (RBAC, "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do: ``authorizer.Attributes``."""

    user: User
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    resource_request: bool = True
    path: str = ""


def forbidden_message(attrs: Attributes) -> str:
    """The message the real server puts in a 403 for a denied request."""
    if not attrs.resource_request:
        return f'User "{attrs.user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    user, group = attrs.user.name, attrs.api_group
    return f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{group}" {where}'


# ---- rule matching (rbac.go) -----------------------------------------------------------------------


def _verb_matches(rule: Rule, verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return "*" in verbs or verb in verbs


def _group_matches(rule: Rule, group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return "*" in groups or group in groups


def _resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for res in rule.get("resources") or ():
        if res == "*" or res == combined:
            return True
        if subresource and res == f"*/{subresource}":
            return True
    return False


def _name_matches(rule: Rule, name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names  # an empty requested name never matches a restricted rule


def _url_matches(rule: Rule, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    if attrs.resource_request:
        return (
            _verb_matches(rule, attrs.verb)
            and _group_matches(rule, attrs.api_group)
            and _resource_matches(rule, attrs.resource, attrs.subresource)
            and _name_matches(rule, attrs.name)
        )
    return _verb_matches(rule, attrs.verb) and _url_matches(rule, attrs.path)


def _subject_applies(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(user.name == subject.get("name"))
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


def _describe_subject(subject: Mapping[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":  # upstream describeSubject: name/namespace
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


# ---- escalation check (policy_comparator.go) ---------------------------------------------------------


def breakdown(rule: Rule) -> list[dict[str, list[str]]]:
    """One rule per (group, resource, verb[, name]) and per (url, verb)."""
    out: list[dict[str, list[str]]] = []
    verbs = list(rule.get("verbs") or ())
    names = list(rule.get("resourceNames") or ())
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                if names:
                    out.extend({**base, "resourceNames": [n]} for n in names)
                else:
                    out.append(base)
    for url in rule.get("nonResourceURLs") or ():
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _has_all(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(w in owner for w in wanted)


def _resources_cover(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or f"*/{path.split('/', 1)[1]}" not in owner:
            return False
    return True


def _urls_cover(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(
        any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owner) for w in wanted
    )


def rule_covers(owner: Rule, sub: Mapping[str, list[str]]) -> bool:
    owner_verbs = owner.get("verbs") or ()
    owner_groups = owner.get("apiGroups") or ()
    owner_names = owner.get("resourceNames") or ()
    sub_names = sub.get("resourceNames") or []
    names_ok = not owner_names or _has_all(owner_names, sub_names) if sub_names else not owner_names
    return (
        ("*" in owner_verbs or _has_all(owner_verbs, sub.get("verbs") or []))
        and ("*" in owner_groups or _has_all(owner_groups, sub.get("apiGroups") or []))
        and _resources_cover(owner.get("resources") or (), sub.get("resources") or [])
        and _urls_cover(owner.get("nonResourceURLs") or (), sub.get("nonResourceURLs") or [])
        and names_ok
    )


def _go_strings(values: Sequence[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def compact_string(rule: Mapping[str, Sequence[str]]) -> str:
    parts = []
    for field, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        if rule.get(field):
            parts.append(f"{label}:{_go_strings(rule[field])}")
    return "{" + ", ".join(parts) + "}"


def compact(rules: Sequence[Mapping[str, list[str]]]) -> list[dict[str, list[str]]]:
    """Merge the verbs of single-group, single-resource rules, as CompactRules does."""
    simple: dict[tuple[str, str, str], dict[str, list[str]]] = {}
    out: list[dict[str, list[str]]] = []
    for rule in rules:
        names = rule.get("resourceNames") or []
        if rule.get("nonResourceURLs") or len(names) > 1:
            out.append(dict(rule))
            continue
        key = (rule["apiGroups"][0], rule["resources"][0], names[0] if names else "\0")
        if key in simple:
            simple[key]["verbs"] = simple[key]["verbs"] + list(rule["verbs"])
        else:
            simple[key] = {k: list(v) for k, v in rule.items()}
            out.append(simple[key])
    return out


class RoleNotFound(Exception):
    pass


class RbacAuthorizer:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _role_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[Rule]:
        kind, name = role_ref.get("kind"), role_ref.get("name", "")
        if kind == "Role":
            role = self._store.get(ROLES, namespace, name)
            if role is None:
                raise RoleNotFound(f'role.rbac.authorization.k8s.io "{name}" not found')
        elif kind == "ClusterRole":
            role = self._store.get(CLUSTER_ROLES, "", name)
            if role is None:
                raise RoleNotFound(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        else:
            raise RoleNotFound(f"unsupported role reference kind: {kind!r}")
        return list(role.get("rules") or ())

    def role_reference_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[Rule]:
        return self._role_rules(role_ref, namespace)

    def _bindings(self, namespace: str) -> Iterator[tuple[Mapping[str, Any], str]]:
        # Uncopied views: authorization only reads, and copying every binding on every request
        # made each call cost O(bindings in the namespace).
        for binding in self._store.view(CLUSTER_ROLE_BINDINGS):
            yield binding, ""
        if namespace:
            for binding in self._store.view(ROLE_BINDINGS, namespace):
                yield binding, namespace

    def visit(self, user: User, namespace: str) -> Iterator[tuple[Rule, str]]:
        """Every rule that applies to ``user`` in ``namespace`` ("" = cluster-wide only), with its source."""
        for binding, ns in self._bindings(namespace):
            subjects = [s for s in binding.get("subjects") or () if _subject_applies(s, user, ns)]
            if not subjects:
                continue
            ref = binding.get("roleRef") or {}
            try:
                rules = self._role_rules(ref, ns)
            except RoleNotFound:
                continue
            kind = "RoleBinding" if ns else "ClusterRoleBinding"
            bname = f"{binding['metadata']['name']}/{ns}" if ns else binding["metadata"]["name"]
            role = f'{ref.get("kind")} "{ref.get("name")}"'
            source = f'{kind} "{bname}" of {role} to {_describe_subject(subjects[0], ns)}'
            for rule in rules:
                yield rule, source

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        return [rule for rule, _ in self.visit(user, namespace)]

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) for the request, as the RBAC authorizer answers a SubjectAccessReview."""
        if MASTERS in attrs.user.groups:
            return True, ""
        for rule, source in self.visit(attrs.user, attrs.namespace):
            if rule_allows(rule, attrs):
                return True, f"RBAC: allowed by {source}"
        return False, ""

    def allowed(self, attrs: Attributes) -> bool:
        return self.authorize(attrs)[0]

    def missing_rights(self, user: User, namespace: str, rules: Sequence[Rule]) -> str | None:
        """``ConfirmNoEscalation``: None when ``user`` holds every permission in ``rules`` in that scope."""
        if MASTERS in user.groups:
            return None
        owner = self.rules_for(user, namespace)
        missing = [
            sub for rule in rules for sub in breakdown(rule) if not any(rule_covers(o, sub) for o in owner)
        ]
        if not missing:
            return None
        descriptions = sorted({compact_string(r) for r in compact(missing)})
        return (
            f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant RBAC '
            f"permissions not currently held:\n" + "\n".join(descriptions)
        )
