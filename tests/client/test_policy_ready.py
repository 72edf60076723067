"""Issue 24 §5 (the dry-run part): a policy whose Ready condition is False is marked wherever it is
listed, and a dry run under it answers what filing would end in (Failed), not "would be granted"."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client import CustomObjectsApi

from jitgrant.cli.main import main
from jitgrant.client import Client
from jitgrant_testing.agents import REASON, Agents
from jitgrant_testing.environment import EXAMPLES, load_manifests, wait_until

BROKEN = "broken-restart"


def _ready_condition(agents: Agents) -> dict[str, Any] | None:
    policies = CustomObjectsApi(agents.env.admin)
    policy = policies.get_cluster_custom_object("jitgrant.dev", "v1alpha1", "grantpolicies", BROKEN)
    found = [c for c in (policy.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"]
    return found[0] if found else None


@pytest.fixture
def broken(agents: Agents) -> Agents:
    """oncall-restart's copy naming a ClusterRole that does not exist: the operator marks it not Ready."""
    [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    policy = copy.deepcopy(policy)
    policy["metadata"]["name"] = BROKEN
    policy["spec"]["grants"] = [{"clusterRole": "jit-no-such-role"}]
    agents.env.apply([policy])
    condition = wait_until(
        lambda: (c := _ready_condition(agents)) and c["status"] == "False" and c, what="Ready=False"
    )
    assert condition["reason"].startswith("ClusterRoleNot"), condition
    return agents


def test_a_dry_run_under_a_policy_that_is_not_ready_is_not_allowed(broken: Agents) -> None:
    with Client.from_kubeconfig(broken.kubeconfig()) as client:
        answer = client.check(
            policy=BROKEN,
            namespace="payments",
            cluster_role="jit-no-such-role",
            justification=REASON,
        )
        assert answer.outcome == "denied", answer
        # The webhook's own answer (issue 24 §5), naming the condition it read.
        assert answer.reason == "PolicyNotReady" and "not Ready" in answer.message
        assert _ready_condition(broken)["reason"] in answer.message
        assert "would end Failed" in answer.message
        ready = client.check(
            policy="oncall-restart",
            namespace="payments",
            cluster_role="jit-restart-checkout",
            justification=REASON,
        )
        assert ready.outcome == "allowed", ready


def test_not_ready_policies_are_marked_where_they_are_listed(
    broken: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client.from_kubeconfig(broken.kubeconfig()) as client:
        listed = {g.policy: g for g in client.grantable()}
    assert listed[BROKEN].ready is False and listed[BROKEN].ready_reason == _ready_condition(broken)["reason"]
    assert "jit-no-such-role" in listed[BROKEN].ready_message
    assert listed["oncall-restart"].ready is True
    assert main(["policies", "--kubeconfig", str(broken.kubeconfig())]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "NOT READY (ClusterRoleNot" in lines[BROKEN]
    assert "NOT READY" not in lines["oncall-restart"]
