"""Property tests of decide(): checked against an independent brute-force authorizer (authorizer.py),
never against jitgrant.policy's own RBAC code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import product

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitgrant.models import (
    AccessRequestSpec,
    GrantOption,
    GrantPolicySpec,
    PolicyRule,
    Requesters,
    RequesterStamp,
)
from jitgrant.policy import PolicyDecision, decide

from .authorizer import VERBS, ApiRequest, allowed_requests, rule_allows

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GROUP_ENTRIES = ("", "apps", "rbac.authorization.k8s.io", "*")
RESOURCE_ENTRIES = (
    "pods",
    "pods/exec",
    "pods/status",
    "deployments",
    "deployments/scale",
    "secrets",
    "roles",
    "nodes/proxy",
    "*",
    "*/scale",
    "*/exec",
)
VERB_ENTRIES = (*VERBS, "*")
NAME_ENTRIES = ("checkout", "cart", "db")
SUBRESOURCE_NAMES = ("scale", "exec", "status", "proxy")
# Requests may also carry entries RBAC cannot match; decide() must refuse those, never misread them.
REQUEST_RESOURCE_ENTRIES = (*RESOURCE_ENTRIES, "pods/*", "*/*")

# The list, written out again here on purpose rather than imported.
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate"}
DANGEROUS_RESOURCES = {"*", "secrets", "pods/exec", "nodes/proxy"}
RBAC_WRITES = {"roles"}
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "jitgrant-system"}

REQUESTER = RequesterStamp(username="alice")


def entries(pool: tuple[str, ...], max_size: int = 3) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=max_size, unique=True).map(tuple)


def rules(resource_pool: tuple[str, ...] = RESOURCE_ENTRIES) -> st.SearchStrategy[PolicyRule]:
    return st.builds(
        lambda groups, resources, verbs, names: PolicyRule(
            api_groups=groups, resources=resources, verbs=verbs, resource_names=names
        ),
        entries(GROUP_ENTRIES, 2),
        entries(resource_pool),
        entries(VERB_ENTRIES),
        st.lists(st.sampled_from(NAME_ENTRIES), max_size=2, unique=True).map(tuple),
    )


@st.composite
def narrowed(draw: st.DrawFn, policy_rules: tuple[PolicyRule, ...]) -> PolicyRule:
    """A rule asking for part of one policy rule: what a well-behaved agent would request."""
    base = draw(st.sampled_from(policy_rules))

    def part(items: tuple[str, ...]) -> tuple[str, ...]:
        # Coin flips per entry rather than st.lists: much cheaper to generate, same shapes.
        kept = tuple(item for item in items if draw(st.booleans()))
        return kept or (draw(st.sampled_from(items)),)

    if base.resource_names:
        names = part(base.resource_names)
    else:
        names = tuple(draw(st.lists(st.sampled_from(NAME_ENTRIES), max_size=2, unique=True)))
    return PolicyRule(
        api_groups=part(base.api_groups),
        resources=part(base.resources),
        verbs=part(base.verbs),
        resource_names=names,
    )


@st.composite
def near_misses(draw: st.DrawFn, policy_rules: tuple[PolicyRule, ...]) -> PolicyRule:
    """A narrowed rule with one entry changed: the requests where a too-generous check would slip."""
    rule = draw(narrowed(policy_rules))
    change = draw(st.sampled_from(["group", "resource", "verb", "every-name", "name"]))
    if change == "group":
        group = draw(st.sampled_from(GROUP_ENTRIES))
        return rule.model_copy(update={"api_groups": (*rule.api_groups[1:], group)})
    if change == "resource":
        # Subresources are where RBAC surprises people: add one, drop one, or pick anything.
        base = draw(st.sampled_from(rule.resources)).partition("/")[0]
        resource = draw(
            st.sampled_from([f"{base}/{sub}" for sub in SUBRESOURCE_NAMES] + [base])
            | st.sampled_from(REQUEST_RESOURCE_ENTRIES)
        )
        return rule.model_copy(update={"resources": (*rule.resources[1:], resource)})
    if change == "verb":
        return rule.model_copy(update={"verbs": (*rule.verbs[1:], draw(st.sampled_from(VERB_ENTRIES)))})
    if change == "every-name":
        return rule.model_copy(update={"resource_names": ()})
    name = draw(st.sampled_from(NAME_ENTRIES))
    return rule.model_copy(update={"resource_names": tuple(dict.fromkeys((*rule.resource_names, name)))})


@dataclass(frozen=True)
class Scenario:
    policy_rules: tuple[PolicyRule, ...]
    policy: GrantPolicySpec
    request: AccessRequestSpec


def make_policy(
    policy_rules: tuple[PolicyRule, ...], *, split: bool, namespaces: tuple[str, ...] = ("payments",)
) -> GrantPolicySpec:
    # Spreading the rules over several grants entries must not change anything: they form one union.
    grants = (
        tuple(GrantOption(rules=(r,)) for r in policy_rules) if split else (GrantOption(rules=policy_rules),)
    )
    return GrantPolicySpec(
        requesters=Requesters(users=("alice",)),
        namespaces=namespaces,
        grants=grants,
        max_duration="15m",
    )


@st.composite
def scenarios(draw: st.DrawFn, *, only_narrowed: bool = False) -> Scenario:
    """A policy and a request made of honest parts plus, usually, one twisted rule.

    Keeping the rest of the request honest makes the twisted rule decide the outcome, so the
    property sees many allowed decisions and many near misses.
    """
    policy_rules = tuple(draw(st.lists(rules(), min_size=1, max_size=4)))
    requested = draw(st.lists(narrowed(policy_rules), min_size=0 if not only_narrowed else 1, max_size=2))
    if not only_narrowed:
        twist = draw(
            st.one_of(near_misses(policy_rules), rules(REQUEST_RESOURCE_ENTRIES), narrowed(policy_rules))
        )
        requested.insert(draw(st.integers(min_value=0, max_value=len(requested))), twist)
    namespaces: tuple[str, ...] = ("payments",)
    namespace = "payments"
    if not only_narrowed:
        extra = st.sampled_from(["kube-system", "*", "jitgrant-system"])
        namespaces = ("payments", *draw(st.lists(extra, max_size=2, unique=True)))
        others = ["orders", "kube-system", "kube-public", "jitgrant-system", "*"]
        namespace = draw(st.just("payments") | st.sampled_from(others))
    policy = make_policy(policy_rules, split=draw(st.booleans()), namespaces=namespaces)
    request = AccessRequestSpec(policy="p", namespace=namespace, rules=tuple(requested))
    return Scenario(policy_rules=policy_rules, policy=policy, request=request)


def run(scenario: Scenario) -> PolicyDecision:
    return decide(
        policy_name="p",
        policy=scenario.policy,
        request=scenario.request,
        requester=REQUESTER,
        inline_rules_enabled=True,
    )


def single_permissions(rule: PolicyRule) -> list[PolicyRule]:
    """The requested rule cut into one-entry rules, by the test's own hand."""
    names: list[tuple[str, ...]] = [(n,) for n in rule.resource_names] or [()]
    return [
        PolicyRule(api_groups=(g,), resources=(r,), verbs=(v,), resource_names=n)
        for g, r, v, n in product(rule.api_groups, rule.resources, rule.verbs, names)
    ]


# The oracle itself -------------------------------------------------------------------------------


def test_oracle_reads_rbac_the_documented_way() -> None:
    deployments = PolicyRule(api_groups=("apps",), resources=("deployments",), verbs=("patch",))
    scale = ApiRequest("apps", "deployments", "scale", "patch", "checkout")
    plain = ApiRequest("apps", "deployments", "", "patch", "checkout")
    assert rule_allows(deployments, plain)
    assert not rule_allows(deployments, scale)
    assert rule_allows(deployments.model_copy(update={"resources": ("*",)}), scale)
    assert rule_allows(deployments.model_copy(update={"resources": ("*/scale",)}), scale)
    assert not rule_allows(deployments.model_copy(update={"resources": ("*/scale",)}), plain)
    named = deployments.model_copy(update={"resource_names": ("checkout",)})
    assert rule_allows(named, plain)
    assert not rule_allows(named, ApiRequest("apps", "deployments", "", "list", ""))
    assert not rule_allows(named, ApiRequest("apps", "deployments", "", "patch", "cart"))


# (1) Allowed scope is within the policy ------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenarios())
def test_an_allowed_request_grants_nothing_the_policy_does_not(scenario: Scenario) -> None:
    decision = run(scenario)
    if decision.allowed:
        granted_by_request = allowed_requests(scenario.request.rules or ())
        granted_by_policy = allowed_requests(scenario.policy_rules)
        assert granted_by_request <= granted_by_policy, sorted(
            granted_by_request - granted_by_policy, key=repr
        )[:5]
    else:
        assert decision.reasons and decision.duration is None


@PROPERTY_SETTINGS
@given(scenarios(only_narrowed=True))
def test_asking_for_part_of_a_policy_rule_is_allowed(scenario: Scenario) -> None:
    # The other direction: the checks are not so strict that narrow, honest requests fail.
    decision = run(scenario)
    assert decision.allowed, decision.reasons


# (2) Dangerous permissions only when named literally ---------------------------------------------


def dangerous_entries(single: PolicyRule) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if single.api_groups[0] == "*":
        found.append(("api_groups", "*"))
    resource = single.resources[0]
    if resource in DANGEROUS_RESOURCES or resource.startswith("*/"):
        found.append(("resources", resource))
    if single.verbs[0] in DANGEROUS_VERBS:
        found.append(("verbs", single.verbs[0]))
    # Writing RBAC outlives the grant (identity-and-approvals.md, "Dangerous permissions"): the policy must
    # name the resource and the verb.
    if resource in RBAC_WRITES and single.verbs[0] in {"create", "update", "patch"}:
        found += [("resources", resource), ("verbs", single.verbs[0])]
    return found


@PROPERTY_SETTINGS
@given(scenarios())
def test_an_allowed_request_holds_no_dangerous_permission_the_policy_did_not_name(
    scenario: Scenario,
) -> None:
    decision = run(scenario)
    if not decision.allowed:
        return
    assert scenario.request.namespace != "*"
    if scenario.request.namespace in SYSTEM_NAMESPACES:
        assert scenario.request.namespace in scenario.policy.namespaces
    for requested_rule in scenario.request.rules or ():
        for single in single_permissions(requested_rule):
            dangerous = dangerous_entries(single)
            if not dangerous:
                continue
            wanted = allowed_requests([single])
            # One policy rule must both grant it and write every dangerous entry out literally.
            assert any(
                all(entry in getattr(policy_rule, field) for field, entry in dangerous)
                and wanted <= allowed_requests([policy_rule])
                for policy_rule in scenario.policy_rules
            ), (single, dangerous)


# (3) Duration within maxDuration ------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    max_minutes=st.integers(min_value=1, max_value=180),
    default_minutes=st.none() | st.integers(min_value=1, max_value=180),
    requested_minutes=st.none() | st.integers(min_value=1, max_value=300),
)
def test_an_allowed_duration_never_exceeds_max(
    max_minutes: int, default_minutes: int | None, requested_minutes: int | None
) -> None:
    if default_minutes is not None:
        default_minutes = min(default_minutes, max_minutes)  # the model refuses default > max
    policy = GrantPolicySpec(
        requesters=Requesters(users=("alice",)),
        namespaces=("payments",),
        grants=(GrantOption(cluster_role="view"),),
        max_duration=f"{max_minutes}m",
        default_duration=None if default_minutes is None else f"{default_minutes}m",
    )
    request = AccessRequestSpec(
        policy="p",
        namespace="payments",
        cluster_role="view",
        duration=None if requested_minutes is None else f"{requested_minutes}m",
    )
    decision = decide(
        policy_name="p", policy=policy, request=request, requester=REQUESTER, inline_rules_enabled=False
    )
    expected = requested_minutes or default_minutes or max_minutes
    assert decision.allowed is (expected <= max_minutes)
    if decision.allowed:
        assert decision.duration == timedelta(minutes=expected)
        assert decision.duration <= timedelta(minutes=max_minutes)
    else:
        assert decision.duration is None
        assert len(decision.reasons) == 1
        assert decision.reasons[0].startswith("duration ")
        assert "is longer than policy p's maxDuration" in decision.reasons[0]
