"""jitgrant_policy_dangerous_identities_without_approval: per policy and dangerous entry, how many
distinct identities could obtain it without a human; set by the operator as policies change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi
from prometheus_client.parser import text_string_to_metric_families

from jitgrant.metrics import Metrics
from jitgrant.models import GrantPolicySpec
from jitgrant.offline.exposure import dangerous_without_approval
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import Environment, wait_until

NAME = "jitgrant_policy_dangerous_identities_without_approval"


def series(metrics: Metrics) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == NAME:
                found[(sample.labels["policy"], sample.labels["permission"])] = sample.value
    return found


def spec(**changes: Any) -> GrantPolicySpec:
    base: dict[str, Any] = {
        "requesters": {
            "serviceAccounts": [{"namespace": "agents", "name": "a"}, {"namespace": "agents", "name": "b"}],
            "groups": ["ops"],
        },
        "namespaces": ["payments"],
        "grants": [
            {"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
            {"clusterRole": "debugger", "acceptDangerous": ["pods/exec"]},
            {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        ],
    }
    base.update(changes)
    return GrantPolicySpec.model_validate(base)


def test_counts_identities_per_dangerous_entry() -> None:
    assert dangerous_without_approval(spec()) == {"pods/exec": 3, "secrets": 3}


def test_approval_required_counts_nothing() -> None:
    approval = {"required": True, "approvers": {"groups": ["sre"]}}
    assert dangerous_without_approval(spec(approval=approval)) == {}


def test_set_replaces_and_removes_series() -> None:
    metrics = Metrics()
    metrics.set_policy_exposure(policy="p", counts={"secrets": 3, "pods/exec": 3})
    metrics.set_policy_exposure(policy="q", counts={"*": 1})
    metrics.set_policy_exposure(policy="p", counts={"secrets": 2})
    assert series(metrics) == {("p", "secrets"): 2.0, ("q", "*"): 1.0}
    metrics.set_policy_exposure(policy="p", counts={})
    assert series(metrics) == {("q", "*"): 1.0}


@pytest.fixture
def operator() -> Iterator[tuple[Environment, list[Runtime]]]:
    runtimes: list[Runtime] = []
    with Environment(runtime_hook=runtimes.append) as env:
        yield env, runtimes


def test_the_operator_sets_it_as_policies_come_and_go(operator: tuple[Environment, list[Runtime]]) -> None:
    env, runtimes = operator
    custom = CustomObjectsApi(env.admin)
    body = {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "GrantPolicy",
        "metadata": {"name": "read-secrets"},
        "spec": {
            "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "a"}], "users": ["alice"]},
            "namespaces": ["payments"],
            "grants": [{"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}],
        },
    }
    custom.create_cluster_custom_object("jitgrant.dev", "v1alpha1", "grantpolicies", body)
    metrics = runtimes[-1].metrics
    wait_until(lambda: series(metrics).get(("read-secrets", "secrets")) == 2.0 or None, what="the gauge")
    custom.delete_cluster_custom_object("jitgrant.dev", "v1alpha1", "grantpolicies", "read-secrets")
    wait_until(lambda: ("read-secrets", "secrets") not in series(metrics) or None, what="the series removed")
