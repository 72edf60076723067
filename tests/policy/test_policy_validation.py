"""Issue 11 §4: policies that admit everyone, and policies the operator cannot use, are refused with
the field named: by the models (and so by the GrantPolicy webhook) and by `check_policy`, whose
sentences become the `PolicyInvalid` reason of a request under a policy stored before the webhook."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from jitgrant.models import GrantPolicySpec
from jitgrant.policy import check_policy
from jitgrant.policy.requesters import requester_matches

from .builders import kube, rule


def body(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-deployments"}],
        "maxDuration": "15m",
    }
    spec.update(overrides)
    return spec


EVERYONE = [
    pytest.param({"groups": ["system:authenticated"]}, "system:authenticated", id="authenticated"),
    pytest.param({"groups": ["system:serviceaccounts"]}, "system:serviceaccounts", id="serviceaccounts"),
    pytest.param({"groups": ["system:unauthenticated"]}, "system:unauthenticated", id="unauthenticated"),
    pytest.param({"users": ["system:anonymous"]}, "system:anonymous", id="anonymous"),
]


@pytest.mark.parametrize(("requesters", "named"), EVERYONE)
def test_a_system_wide_group_as_requester_is_refused_naming_the_opt_in(
    requesters: dict[str, Any], named: str
) -> None:
    check = check_policy(body(requesters=requesters))
    assert check.spec is None
    assert check.problems == (
        f"spec.requesters: requesters name {named}, which matches every caller of its kind, not one agent; "
        "name ServiceAccounts, users or narrower groups (or set dangerouslyAllowSystemGroups: true if "
        "everyone is meant)",
    )


@pytest.mark.parametrize(("requesters", "named"), EVERYONE)
def test_with_the_loud_opt_in_a_system_wide_group_is_what_it_says(
    requesters: dict[str, Any], named: str
) -> None:
    check = check_policy(body(requesters={**requesters, "dangerouslyAllowSystemGroups": True}))
    assert check.valid and check.spec is not None
    if "groups" in requesters:
        unrelated = kube("system:serviceaccount:other:anyone", named, "system:authenticated")
        assert requester_matches(check.spec.requesters, unrelated)


def test_a_namespace_scoped_serviceaccounts_group_is_not_everyone() -> None:
    assert check_policy(body(requesters={"groups": ["system:serviceaccounts:agents"]})).valid


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"approval": {"required": True}},
            "spec.approval: approval.required needs approval.approvers (users or groups)",
        ),
        (
            {"approval": {"required": True, "approvers": {"users": ["alice"]}, "minApprovals": 2}},
            "spec.approval: approval.minApprovals 2 can never be reached: approvers names only 1 user(s) and "
            "no groups (name more approvers or lower minApprovals)",
        ),
        (
            {"justification": {"required": True, "pattern": "^(INC"}},
            "spec.justification.pattern: pattern '^(INC' is not a valid regular expression (missing ), "
            "unterminated subpattern at position 1)",
        ),
        (
            {"defaultDuration": "1h"},
            "spec: defaultDuration 1h is longer than maxDuration 15m",
        ),
        (
            {"namespaces": ["kube-*"]},
            "spec.namespaces: namespaces 'kube-*' are not namespace names (names do not glob; write a name, "
            'or "*" for any non-system namespace)',
        ),
        (
            {"grants": [{"rules": [rule(["pods/*"], ["get"])]}]},
            "spec.grants[0].rules[0]: resource 'pods/*' is not valid RBAC: write 'resource', "
            "'resource/subresource', '*' or '*/subresource' (there is no 'resource/*')",
        ),
        (
            {"grants": [{"clusterRole": "edit", "acceptDangerous": ["secret"]}]},
            "spec.grants[0].acceptDangerous: 'secret' is not on the dangerous list (known: ",
        ),
        (
            {"grants": [{"rules": [rule(["pods"], ["get"])], "acceptDangerous": ["secrets"]}]},
            "spec.grants[0]: acceptDangerous is only for a clusterRole entry; inline rules opt in to a "
            "dangerous permission by naming it literally in the rule",
        ),
    ],
)
def test_an_unusable_policy_is_refused_with_the_field_and_the_fix(
    overrides: dict[str, Any], expected: str
) -> None:
    check = check_policy(body(**overrides))
    assert not check.valid
    [problem] = check.problems
    assert problem.startswith(expected)


def test_any_non_system_namespace_is_a_valid_policy() -> None:
    # "*" is documented: any namespace except the system ones, which must be named.
    assert check_policy(body(namespaces=["*"])).valid


def test_every_problem_is_reported_at_once() -> None:
    check = check_policy(
        body(requesters={"groups": ["system:authenticated"]}, justification={"pattern": "("}, maxDuration="x")
    )
    fields = [problem.split(":")[0] for problem in check.problems]
    assert fields == ["spec.requesters", "spec.maxDuration", "spec.justification.pattern"]


def test_the_model_and_the_check_agree() -> None:
    with pytest.raises(ValidationError):
        GrantPolicySpec.model_validate(body(requesters={"groups": ["system:authenticated"]}))
    assert check_policy(body()).valid
