"""decide(): the reference scenario, each refusal with its reason, and the decision's other fields."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from jitgrant.models import PolicyRule
from jitgrant.policy import describe_scope

from .builders import POLICY, check, kube, policy, request, rule, rules_policy, rules_request

TICKET = {"required": True, "pattern": "^(INC|CHG)-[0-9]+"}


# The reference scenario --------------------------------------------------------------------------


def test_reference_scenario_is_allowed_for_fifteen_minutes() -> None:
    decision = check(policy(justification=TICKET), request(justification="INC-4242 checkout stuck"))
    assert decision.allowed, decision.reasons
    assert decision.reasons == ()
    assert decision.duration == timedelta(minutes=15)
    assert decision.cluster_role is None
    assert decision.rules == (
        PolicyRule(
            api_groups=("apps",), resources=("deployments",), verbs=("patch",), resource_names=("checkout",)
        ),
    )
    assert decision.message == "allowed"


def test_reference_scenario_in_production_needs_one_approval() -> None:
    approval = {"required": True, "approvers": {"groups": ["sre"]}, "minApprovals": 1}
    decision = check(policy(approval=approval), request())
    assert decision.allowed
    assert decision.needs_approval


def test_staging_policy_without_approval_is_auto_approved() -> None:
    assert check(policy(), request()).needs_approval is False


def test_delete_instead_of_patch_names_the_verbs_the_policy_allows() -> None:
    req = rules_request(rule(["deployments"], ["delete"], groups=["apps"], names=["checkout"]))
    decision = check(policy(), req)
    assert not decision.allowed
    assert decision.reasons == (
        "verb 'delete' on deployments.apps named 'checkout' is not in policy oncall-restart "
        "(allowed: get, patch)",
    )
    assert decision.duration is None


def test_cluster_role_in_the_allowlist_is_allowed() -> None:
    decision = check(policy(), request(clusterRole="jit-restart-deployments"))
    assert decision.allowed
    assert decision.cluster_role == "jit-restart-deployments"
    assert decision.rules == ()


# Refusals, one at a time ------------------------------------------------------------------------


def test_request_checked_against_another_policy_is_refused() -> None:
    decision = check(policy(), request(policy="break-glass"))
    assert decision.reasons == (
        "the request names policy 'break-glass' but was checked against policy 'oncall-restart'",
    )


def test_cluster_role_outside_the_allowlist_names_the_allowed_ones() -> None:
    decision = check(policy(), request(clusterRole="cluster-admin"))
    assert decision.reasons == (
        "ClusterRole 'cluster-admin' is not in policy oncall-restart (allowed: jit-restart-deployments)",
    )


def test_cluster_role_under_a_rules_only_policy_says_so() -> None:
    decision = check(rules_policy(rule(["pods"], ["get"])), request(clusterRole="view"))
    assert decision.reasons == (
        "ClusterRole 'view' is not in policy oncall-restart (it allows no ClusterRoles, only inline rules)",
    )


def test_inline_rules_are_refused_when_the_operator_mode_is_off() -> None:
    decision = check(policy(), request(), inline_rules_enabled=False)
    assert not decision.allowed
    assert decision.reasons == (
        "inline rules are refused because the operator's inline-rules mode is off; request a ClusterRole "
        "instead (policy oncall-restart: allowed ClusterRoles: jit-restart-deployments)",
    )


def test_inline_mode_off_with_a_rules_only_policy_says_nothing_is_grantable() -> None:
    decision = check(rules_policy(rule(["pods"], ["get"])), request(), inline_rules_enabled=False)
    assert decision.reasons[0].endswith("(policy oncall-restart: it allows no ClusterRoles)")


def test_inline_mode_off_still_allows_cluster_roles() -> None:
    decision = check(policy(), request(clusterRole="jit-restart-deployments"), inline_rules_enabled=False)
    assert decision.allowed


def test_inline_rules_under_a_cluster_role_only_policy_name_the_roles() -> None:
    spec = policy(grants=[{"clusterRole": "jit-restart-deployments"}])
    decision = check(spec, request())
    assert decision.reasons == (
        "policy oncall-restart allows no inline rules (allowed ClusterRoles: jit-restart-deployments)",
    )


def test_duration_longer_than_max_shows_both() -> None:
    decision = check(policy(maxDuration="15m"), request(duration="1h30m"))
    assert decision.reasons == (
        "duration 1h30m is longer than policy oncall-restart's maxDuration 15m (ask for 15m or less)",
    )
    assert decision.duration is None


def test_duration_equal_to_max_is_allowed() -> None:
    decision = check(policy(maxDuration="20m"), request(duration="20m"))
    assert decision.duration == timedelta(minutes=20)


def test_omitted_duration_takes_the_policy_default() -> None:
    decision = check(policy(maxDuration="30m", defaultDuration="10m"), request(duration=None))
    assert decision.duration == timedelta(minutes=10)


def test_omitted_duration_without_a_default_takes_max() -> None:
    decision = check(policy(maxDuration="30m"), request(duration=None))
    assert decision.duration == timedelta(minutes=30)


def test_missing_required_justification_shows_the_pattern() -> None:
    decision = check(policy(justification=TICKET), request(justification="   "))
    assert decision.reasons == (
        "a justification is required by policy oncall-restart (give one matching '^(INC|CHG)-[0-9]+')",
    )


def test_missing_required_justification_without_pattern() -> None:
    decision = check(policy(justification={"required": True}), request())
    assert decision.reasons == ("a justification is required by policy oncall-restart (give one)",)


def test_justification_not_matching_the_pattern_is_quoted() -> None:
    decision = check(policy(justification=TICKET), request(justification="restart checkout INC-1"))
    assert decision.reasons == (
        "justification 'restart checkout INC-1' does not match policy oncall-restart's pattern "
        "'^(INC|CHG)-[0-9]+'",
    )


def test_justification_pattern_is_searched_so_the_policy_anchors_it() -> None:
    # Documented choice: search semantics, like JSON Schema `pattern` and CEL `matches()`.
    unanchored = {"required": True, "pattern": "INC-[0-9]+"}
    assert check(policy(justification=unanchored), request(justification="see INC-7")).allowed
    assert check(policy(justification=TICKET), request(justification="CHG-9 rollout")).allowed
    assert not check(policy(justification=TICKET), request(justification="see INC-7")).allowed
    anchored = {"required": True, "pattern": "^INC-[0-9]+$"}
    assert not check(policy(justification=anchored), request(justification="INC-7 and more")).allowed


def test_a_long_justification_is_quoted_shortened() -> None:
    decision = check(policy(justification=TICKET), request(justification="x" * 500))
    assert "x" * 80 + "..." in decision.reasons[0]
    assert "x" * 81 not in decision.reasons[0]


def test_invalid_pattern_is_refused_when_the_policy_is_parsed_naming_the_field() -> None:
    # It used to parse, and every request under it was refused for a reason only the platform team
    # could fix; now the policy itself is invalid (the webhook refuses it at apply time).
    broken = {"required": True, "pattern": "^(INC"}
    with pytest.raises(ValidationError) as raised:
        policy(justification=broken)
    [error] = raised.value.errors()
    assert error["loc"] == ("justification", "pattern")
    assert "pattern '^(INC' is not a valid regular expression" in error["msg"]


def test_optional_justification_may_be_empty() -> None:
    optional = {"required": False, "pattern": "^(INC|CHG)-[0-9]+"}
    assert check(policy(justification=optional), request(justification="")).allowed


def test_optional_justification_when_given_must_match() -> None:
    optional = {"required": False, "pattern": "^(INC|CHG)-[0-9]+"}
    assert not check(policy(justification=optional), request(justification="because")).allowed


def test_every_refusal_is_reported_not_just_the_first() -> None:
    spec = policy(justification=TICKET)
    req = request(policy=POLICY, namespace="orders", clusterRole="admin", duration="2h", justification="")
    decision = check(spec, req, requester=kube("mallory"))
    assert [reason.split(" ")[0] for reason in decision.reasons] == [
        "requester",
        "namespace",
        "ClusterRole",
        "duration",
        "a",
    ]
    assert decision.message == "; ".join(decision.reasons)


# describe_scope -------------------------------------------------------------------------------


def test_describe_scope_of_the_reference_scenario() -> None:
    assert describe_scope(request()) == "patch deployments/checkout in payments"


def test_describe_scope_of_a_cluster_role() -> None:
    scope = describe_scope(request(clusterRole="jit-restart-deployments"))
    assert scope == "ClusterRole jit-restart-deployments in payments"


def test_describe_scope_of_several_rules() -> None:
    req = rules_request(
        rule(
            ["deployments", "deployments/scale"],
            ["get", "patch"],
            groups=["apps"],
            names=["checkout", "cart"],
        ),
        rule(["pods"], ["list"]),
    )
    assert describe_scope(req) == (
        "get,patch deployments (names: checkout, cart), deployments/scale (names: checkout, cart); "
        "list pods in payments"
    )
