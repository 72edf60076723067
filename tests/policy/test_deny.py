"""Deny rules (issue 31 §5): permissions no grant may carry, whatever the ClusterRole says."""

from __future__ import annotations

from typing import Any

import pytest

from jitgrant.models import DenyRule, GrantPolicySpec, PolicyRule
from jitgrant.models.vocabulary import Reason
from jitgrant.policy import ClusterRoleState, check_policy, readiness
from jitgrant.policy.deny import (
    apply_deny_refusal,
    denies,
    deny_rules_for,
    grant_deny_reason,
    parse_deny_rules,
)
from jitgrant.policy.rbac import Permission

NO_POD_DELETE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "deletecollection"]}


def _spec(**extra: Any) -> GrantPolicySpec:
    spec = {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall"}]},
        "namespaces": ["payments", "orders"],
        "grants": [{"clusterRole": "jit-restart"}],
        "deny": [NO_POD_DELETE],
        **extra,
    }
    return GrantPolicySpec.model_validate(spec)


def _rule(
    groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None
) -> PolicyRule:
    return PolicyRule(api_groups=groups, resources=resources, verbs=verbs, resource_names=names or [])


@pytest.mark.parametrize(
    ("permission", "denied"),
    [
        (Permission("", "pods", "delete"), True),
        (Permission("", "pods", "delete", "web-0"), True),  # one name is still a pod deleted
        (Permission("*", "*", "*"), True),  # a wildcard ClusterRole carries everything
        (Permission("", "*", "delete"), True),
        (Permission("", "pods", "get"), False),
        (Permission("", "pods/log", "delete"), False),  # a subresource is another permission
        (Permission("apps", "pods", "delete"), False),
        (Permission("", "services", "delete"), False),
    ],
)
def test_a_deny_rule_meets_every_permission_that_overlaps_it(permission: Permission, denied: bool) -> None:
    assert denies(DenyRule.model_validate(NO_POD_DELETE), permission) is denied


def test_names_and_subresource_wildcards_overlap_as_rbac_reads_them() -> None:
    one_pod = DenyRule.model_validate({**NO_POD_DELETE, "resourceNames": ["db-0"]})
    assert denies(one_pod, Permission("", "pods", "delete"))  # every name includes db-0
    assert not denies(one_pod, Permission("", "pods", "delete", "web-0"))
    exec_anything = DenyRule.model_validate({"apiGroups": ["*"], "resources": ["*/exec"], "verbs": ["*"]})
    assert denies(exec_anything, Permission("", "pods/exec", "create"))
    assert not denies(exec_anything, Permission("", "pods", "create"))


def test_the_grant_time_reason_names_the_rule_and_the_permission() -> None:
    role_rules = [_rule([""], ["pods"], ["get", "list", "delete"])]
    reason = grant_deny_reason(
        policy=_spec(), cluster_wide=(), namespace="payments", cluster_role="jit-restart", rules=role_rules
    )
    assert reason is not None
    assert "ClusterRole 'jit-restart' carries permissions a deny rule forbids" in reason
    assert (
        'delete pods (apiGroup "") meets spec.deny[0] (verbs delete, deletecollection; resources pods'
        in reason
    )
    safe = [_rule([""], ["pods"], ["get", "list"])]
    assert (
        grant_deny_reason(policy=_spec(), cluster_wide=(), namespace="payments", cluster_role="r", rules=safe)
        is None
    )


def test_a_rule_scoped_to_namespaces_applies_only_there() -> None:
    scoped = _spec(deny=[{**NO_POD_DELETE, "namespaces": ["payments"]}])
    rules = [_rule([""], ["pods"], ["delete"])]
    assert grant_deny_reason(
        policy=scoped, cluster_wide=(), namespace="payments", cluster_role="r", rules=rules
    )
    assert not grant_deny_reason(
        policy=scoped, cluster_wide=(), namespace="orders", cluster_role="r", rules=rules
    )


def test_cluster_wide_rules_apply_to_every_policy_and_are_named_as_such() -> None:
    wide = parse_deny_rules('[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]')
    spec = _spec(deny=[])
    assert [deny.origin for deny in deny_rules_for(spec, wide)] == ["denyRules[0]"]
    reason = apply_deny_refusal(spec, {"jit-restart": [_rule([""], ["secrets"], ["get"])]}, wide)
    assert reason is not None and "the operator's cluster-wide deny rule denyRules[0]" in reason
    assert apply_deny_refusal(spec, {"jit-restart": [_rule([""], ["secrets"], ["get"])]}) is None


def test_inline_rules_meeting_the_policys_own_deny_rule_are_refused_at_apply() -> None:
    check = check_policy(
        {
            "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall"}]},
            "namespaces": ["payments"],
            "grants": [{"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]}],
            "deny": [NO_POD_DELETE],
        }
    )
    assert not check.valid
    assert "spec.grants[0].rules carries permissions a deny rule forbids" in check.message
    assert "spec.deny[0]" in check.message


def test_a_cluster_role_meeting_a_deny_rule_makes_the_policy_not_ready() -> None:
    check = check_policy(_spec().model_dump(by_alias=True, exclude_none=True))
    widened = ClusterRoleState("jit-restart", found=True, bindable=True, rules=(_rule(["*"], ["*"], ["*"]),))
    result = readiness(policy_name="p", check=check, roles=[widened])
    assert not result.ready and result.reason is Reason.DENY_RULE_MATCHED
    assert "spec.deny[0]" in result.message


def test_bad_cluster_wide_rules_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"denyRules\[0\]\.verbs"):
        parse_deny_rules('[{"apiGroups": [""], "resources": ["pods"]}]')
    with pytest.raises(ValueError, match="not JSON"):
        parse_deny_rules("pods: delete")
