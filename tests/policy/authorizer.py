"""An independent oracle for the property tests: what concrete API requests a set of rules lets
through, by brute force over a small finite universe.

It transcribes the API server's authorizer (`RuleAllows` in plugin/pkg/auth/authorizer/rbac and
`ResourceMatches` & co. in pkg/apis/rbac/v1/evaluation_helpers.go), which answers a different
question from jitgrant.policy.rbac (the escalation check's "does rule set A cover rule set B"). It
deliberately shares no code with jitgrant.policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import product

from jitgrant.models import PolicyRule

GROUPS = ("", "apps", "rbac.authorization.k8s.io")
RESOURCES = ("pods", "deployments", "secrets", "roles", "nodes")
SUBRESOURCES = ("", "exec", "scale", "status", "proxy")
VERBS = ("get", "list", "patch", "delete", "escalate", "bind", "impersonate")
NAMES = ("", "checkout", "cart", "db")  # "" is a request without a name (list, create)


@dataclass(frozen=True)
class ApiRequest:
    """The attributes the authorizer sees for one resource request."""

    group: str
    resource: str
    subresource: str
    verb: str
    name: str


UNIVERSE = tuple(ApiRequest(*attrs) for attrs in product(GROUPS, RESOURCES, SUBRESOURCES, VERBS, NAMES))


def rule_allows(rule: PolicyRule, request: ApiRequest) -> bool:
    combined = request.resource + ("/" + request.subresource if request.subresource else "")
    verb_ok = "*" in rule.verbs or request.verb in rule.verbs
    group_ok = "*" in rule.api_groups or request.group in rule.api_groups
    resource_ok = False
    for entry in rule.resources:
        star_subresource = bool(request.subresource) and entry == "*/" + request.subresource
        if entry in ("*", combined) or star_subresource:
            resource_ok = True
    name_ok = len(rule.resource_names) == 0 or request.name in rule.resource_names
    return verb_ok and group_ok and resource_ok and name_ok


@cache
def _allowed_by(rule: PolicyRule) -> frozenset[ApiRequest]:
    return frozenset(request for request in UNIVERSE if rule_allows(rule, request))


def allowed_requests(rules: Iterable[PolicyRule]) -> frozenset[ApiRequest]:
    """Every request in the universe that at least one of the rules lets through."""
    return frozenset().union(*(_allowed_by(rule) for rule in rules))
