"""RBAC coverage semantics (wildcards, subresources, resourceNames) and the reasons for what is missing."""

from __future__ import annotations

from typing import Any

import pytest

from jitgrant.models import PolicyRule
from jitgrant.policy import Permission, breakdown, rules_cover, uncovered_permissions

from .builders import check, rule, rules_policy, rules_request


def pr(body: dict[str, Any]) -> PolicyRule:
    return PolicyRule.model_validate(body)


@pytest.mark.parametrize(
    ("granted", "requested", "covered"),
    [
        # exact entries
        (rule(["pods"], ["get"]), rule(["pods"], ["get"]), True),
        (rule(["pods"], ["get"]), rule(["pods"], ["list"]), False),
        (rule(["pods"], ["get"]), rule(["pods"], ["get"], groups=["apps"]), False),
        # "*" in the policy covers anything at that position, subresources included
        (rule(["*"], ["get"]), rule(["deployments/scale"], ["get"]), True),
        (rule(["pods"], ["*"]), rule(["pods"], ["delete"]), True),
        (rule(["pods"], ["get"], groups=["*"]), rule(["pods"], ["get"], groups=["apps"]), True),
        # a requested "*" is covered only by a policy "*"
        (rule(["pods", "deployments"], ["get"]), rule(["*"], ["get"]), False),
        (rule(["pods"], ["get", "list", "watch"]), rule(["pods"], ["*"]), False),
        (rule(["pods"], ["get"], groups=["", "apps"]), rule(["pods"], ["get"], groups=["*"]), False),
        # subresources: the parent does not cover them, "*/sub" covers that subresource everywhere
        (rule(["deployments"], ["patch"]), rule(["deployments/scale"], ["patch"]), False),
        (rule(["deployments/scale"], ["patch"]), rule(["deployments"], ["patch"]), False),
        (rule(["*/scale"], ["patch"]), rule(["deployments/scale"], ["patch"]), True),
        (rule(["*/scale"], ["patch"]), rule(["deployments"], ["patch"]), False),
        (rule(["*/scale"], ["patch"]), rule(["deployments/status"], ["patch"]), False),
        (rule(["deployments/scale"], ["patch"]), rule(["*/scale"], ["patch"]), False),
        # resourceNames: empty means every name
        (rule(["pods"], ["get"]), rule(["pods"], ["get"], names=["a"]), True),
        (rule(["pods"], ["get"], names=["a", "b"]), rule(["pods"], ["get"], names=["b"]), True),
        (rule(["pods"], ["get"], names=["a"]), rule(["pods"], ["get"], names=["a", "b"]), False),
        (rule(["pods"], ["get"], names=["a"]), rule(["pods"], ["get"]), False),
        # case matters
        (rule(["pods"], ["get"]), rule(["Pods"], ["get"]), False),
    ],
)
def test_single_rule_coverage(granted: dict[str, Any], requested: dict[str, Any], covered: bool) -> None:
    assert rules_cover([pr(granted)], [pr(requested)]) is covered


def test_a_request_may_combine_permissions_from_several_policy_rules() -> None:
    granted = [pr(rule(["pods"], ["get"])), pr(rule(["pods"], ["list"])), pr(rule(["services"], ["get"]))]
    assert rules_cover(granted, [pr(rule(["pods", "services"], ["get"])), pr(rule(["pods"], ["list"]))])
    assert not rules_cover(granted, [pr(rule(["services"], ["get", "list"]))])


def test_uncovered_permissions_lists_exactly_what_is_missing() -> None:
    granted = [pr(rule(["pods"], ["get"], names=["a"]))]
    missing = uncovered_permissions(granted, [pr(rule(["pods"], ["get", "delete"], names=["a", "b"]))])
    assert missing == (
        Permission("", "pods", "get", "b"),
        Permission("", "pods", "delete", "a"),
        Permission("", "pods", "delete", "b"),
    )


def test_breakdown_of_a_rule_without_names_asks_for_every_name() -> None:
    assert breakdown(pr(rule(["pods", "pods/log"], ["get"]))) == (
        Permission("", "pods", "get", None),
        Permission("", "pods/log", "get", None),
    )


# Reasons for inline rules, through decide() --------------------------------------------------------


def reasons(policy_rules: list[dict[str, Any]], requested: list[dict[str, Any]]) -> tuple[str, ...]:
    return check(rules_policy(*policy_rules), rules_request(*requested)).reasons


def test_several_missing_verbs_make_one_reason() -> None:
    got = reasons([rule(["pods"], ["get"])], [rule(["pods"], ["delete", "create", "get"])])
    assert got == ("verbs 'delete', 'create' on pods are not in policy oncall-restart (allowed: get)",)


def test_every_name_when_the_policy_lists_names() -> None:
    got = reasons(
        [rule(["deployments"], ["patch"], groups=["apps"], names=["checkout"])],
        [rule(["deployments"], ["patch"], groups=["apps"])],
    )
    assert got == (
        "verb 'patch' on deployments.apps (every name) is not in policy oncall-restart "
        "(allowed names: checkout)",
    )


def test_a_name_the_policy_does_not_list() -> None:
    got = reasons(
        [rule(["deployments"], ["patch"], groups=["apps"], names=["checkout"])],
        [rule(["deployments"], ["patch"], groups=["apps"], names=["cart"])],
    )
    assert got == (
        "verb 'patch' on deployments.apps named 'cart' is not in policy oncall-restart "
        "(allowed names: checkout)",
    )


def test_a_resource_the_policy_does_not_mention_lists_what_it_does() -> None:
    policy_rules = [rule(["deployments"], ["get"], groups=["apps"]), rule(["pods/log"], ["get"])]
    got = reasons(policy_rules, [rule(["configmaps"], ["get", "list"])])
    assert got == (
        "resource 'configmaps' is not in policy oncall-restart (allowed: deployments.apps, pods/log)",
    )


def test_a_subresource_is_not_covered_by_its_parent() -> None:
    got = reasons(
        [rule(["deployments"], ["patch"], groups=["apps"])],
        [rule(["deployments/scale"], ["patch"], groups=["apps"])],
    )
    assert got == (
        "resource 'deployments.apps/scale' is not in policy oncall-restart (allowed: deployments.apps)",
    )


def test_star_slash_subresource_grants_the_subresource() -> None:
    assert (
        reasons(
            [rule(["*/scale"], ["patch"], groups=["apps"])],
            [rule(["deployments/scale", "statefulsets/scale"], ["patch"], groups=["apps"])],
        )
        == ()
    )


def test_a_requested_wildcard_verb_needs_a_policy_wildcard() -> None:
    got = reasons([rule(["pods"], ["get", "list"])], [rule(["pods"], ["*"])])
    assert got == ("verb '*' on pods is not in policy oncall-restart (allowed: get, list)",)


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        (
            rule(["pods/*"], ["get"]),
            "resource 'pods/*' is not valid RBAC: write 'resource', 'resource/subresource', '*' or "
            "'*/subresource' (there is no 'resource/*')",
        ),
        (rule(["pods"], ["ge*"]), "verb 'ge*' is not valid RBAC: a verb is a word or '*' alone"),
        (
            rule(["pods"], ["get"], groups=["app*"]),
            "apiGroup 'app*' is not valid RBAC: '*' only stands alone",
        ),
        (
            rule(["pods"], ["get"], names=["*"]),
            "resourceNames entry '*' names no object (names do not glob); leave resourceNames out to ask for "
            "every name",
        ),
    ],
)
def test_malformed_entries_are_refused_as_such(requested: dict[str, Any], reason: str) -> None:
    # The policy grants everything, so the only reason left is the malformed entry itself.
    everything = rule(["*"], ["*"], groups=["*"])
    assert reasons([everything], [requested]) == (reason,)


def test_malformed_entry_does_not_hide_other_gaps_in_the_same_rule() -> None:
    got = reasons([rule(["pods"], ["get"])], [rule(["pods/*", "services"], ["get"])])
    assert len(got) == 2
    assert got[1] == "resource 'services' is not in policy oncall-restart (allowed: pods)"


@pytest.mark.parametrize("resource", ["a/b/c", "/status", "pods/", "*/*", ""])
def test_resource_entries_rbac_cannot_match_are_refused(resource: str) -> None:
    everything = rule(["*"], ["*"], groups=["*"])
    got = reasons([everything], [rule([resource], ["get"])])
    assert got and got[0].startswith(f"resource '{resource}' is not valid RBAC")
