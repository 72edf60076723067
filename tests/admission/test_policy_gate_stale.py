"""The admission gate on Ready (issue 24 §5) never refuses on a stale condition: a policy written
not Ready a moment ago is judged again before a refusal, so a request filed right after the fix
(the missing ClusterRole created) is admitted, while the status still says False."""

from __future__ import annotations

import pytest

from jitgrant.operator import policy_status
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, wait_until


def test_a_request_filed_right_after_the_fix_is_admitted(monkeypatch: pytest.MonkeyPatch) -> None:
    # No periodic re-check during the test: the condition stays as written when the policy was applied.
    monkeypatch.setattr(policy_status, "RECHECK_SECONDS", 3600.0)
    with Environment() as env:
        env.create_deployment("payments", "checkout")
        env.allow_to_request("agents", service_account="oncall-agent")
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))  # before its ClusterRole
        runtime = env.operator.runtime
        assert runtime is not None
        wait_until(
            lambda: (
                (state := runtime.watched_ready.get("oncall-restart")) is not None and state.status == "False"
            ),
            what="the policy judged not Ready (its ClusterRole is missing)",
        )
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        assert runtime.watched_ready["oncall-restart"].status == "False"  # the condition is stale now
        [request] = load_manifests(EXAMPLES / "requests" / "restart-checkout.yaml")
        agent = env.client_for_service_account("agents", "oncall-agent")
        env.create_request(request, client=agent)
        active = env.wait_for_phase("agents", request["metadata"]["name"], "Active")
        assert active["status"]["reason"] == "Granted"
