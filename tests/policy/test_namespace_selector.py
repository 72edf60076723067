"""Namespaces by label (issue 31 §4): spec.namespaceSelector, matched against live labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from jitgrant.lifecycle.transitions import Action, live_grant_step
from jitgrant.models import AccessRequest, GrantPolicySpec
from jitgrant.policy import check_policy, decide
from jitgrant.policy.selector import policy_for_namespace, selector_matches

OPERATOR_NS = "jitgrant-system"


def _spec(**extra: Any) -> GrantPolicySpec:
    spec = {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall"}]},
        "namespaceSelector": {"matchLabels": {"team": "payments"}},
        "grants": [{"clusterRole": "jit-restart"}],
        **extra,
    }
    return GrantPolicySpec.model_validate(spec)


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"team": "payments"}}, {"team": "payments", "env": "prod"}, True),
        ({"matchLabels": {"team": "payments"}}, {"team": "orders"}, False),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stg"]}]},
            {"env": "stg"},
            True,
        ),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"team": "x"}, False),
        ({"matchExpressions": [{"key": "frozen", "operator": "DoesNotExist"}]}, {"frozen": ""}, False),
    ],
)
def test_label_selectors_mean_what_kubernetes_means(
    selector: dict[str, Any], labels: dict[str, str], matches: bool
) -> None:
    assert selector_matches(_spec(namespaceSelector=selector).namespace_selector, labels) is matches  # type: ignore[arg-type]


def test_a_selected_namespace_is_allowed_and_a_system_one_never_is() -> None:
    spec = _spec()
    scoped = policy_for_namespace(spec, "pay-eu", {"team": "payments"}, operator_namespace=OPERATOR_NS)
    assert scoped.namespaces == ("pay-eu",)
    for system in ("kube-system", "kube-public", OPERATOR_NS):
        assert (
            policy_for_namespace(spec, system, {"team": "payments"}, operator_namespace=OPERATOR_NS) is spec
        )
    assert policy_for_namespace(spec, "pay-eu", None, operator_namespace=OPERATOR_NS) is spec


def test_a_policy_must_name_namespaces_somehow_and_a_selector_must_select_something() -> None:
    base = {"requesters": {"users": ["alice"]}, "grants": [{"clusterRole": "r"}]}
    assert "names no namespace" in check_policy(base).message
    assert "namespaceSelector is empty" in check_policy({**base, "namespaceSelector": {}}).message
    bad = {"matchExpressions": [{"key": "env", "operator": "In"}]}
    assert "operator In needs values" in check_policy({**base, "namespaceSelector": bad}).message
    eks = {
        "type": "EKS",
        "eks": {"clusterName": "c", "region": "eu-west-1", "roleArn": "arn:aws:iam::123456789012:role/r"},
    }
    with pytest.raises(ValidationError, match=r"with target\.type EKS list the namespaces by name"):
        _spec(target=eks)


def _request(namespace: str) -> AccessRequest:
    return AccessRequest.from_object(
        {
            "metadata": {"name": "r", "namespace": "agents"},
            "spec": {
                "policy": "p",
                "namespace": namespace,
                "clusterRole": "jit-restart",
                "duration": "10m",
                "requester": {"username": "system:serviceaccount:agents:oncall"},
            },
            "status": {
                "phase": "Active",
                "activatedAt": "2026-01-01T00:00:00Z",
                "expiresAt": "2026-01-01T00:10:00Z",
            },
        }
    )


def test_a_label_removed_during_a_grant_ends_it_as_a_narrowed_policy_does() -> None:
    request, spec = _request("pay-eu"), _spec()
    labelled = policy_for_namespace(spec, "pay-eu", {"team": "payments"}, operator_namespace=OPERATOR_NS)
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    kwargs: dict[str, Any] = {"now": now, "inline_rules_enabled": False, "operator_namespace": OPERATOR_NS}
    assert live_grant_step(request=request, policy=labelled, **kwargs) is None
    unlabelled = policy_for_namespace(spec, "pay-eu", {}, operator_namespace=OPERATOR_NS)
    step = live_grant_step(request=request, policy=unlabelled, **kwargs)
    assert step is not None and step.action is Action.REVOKE and step.reason == "PolicyChanged"
    assert "non-system namespaces labelled team=payments" in step.message


def test_the_refusal_names_the_selector() -> None:
    request = _request("orders")
    assert request.spec.requester is not None
    decision = decide(
        policy_name="p",
        policy=_spec(),
        request=request.spec,
        requester=request.spec.requester,
        inline_rules_enabled=False,
    )
    assert not decision.allowed
    assert (
        "namespace 'orders' is not in policy p (allowed: non-system namespaces labelled team=payments)"
        in (decision.message)
    )
