"""GrantPolicy carries a status written by the operator, and `kubectl get gp` shows its Ready condition."""

from __future__ import annotations

from jitgrant.models import GrantPolicy
from jitgrant.models.crd import grant_policy_crd


def test_grant_policy_has_a_status_subresource_and_a_ready_column() -> None:
    version = grant_policy_crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(condition)
    assert "observedGeneration" in status["properties"]


def test_the_model_reads_the_status_the_operator_writes() -> None:
    policy = GrantPolicy.from_object(
        {
            "metadata": {"name": "p", "generation": 3},
            "spec": {
                "requesters": {"users": ["alice"]},
                "namespaces": ["payments"],
                "grants": [{"clusterRole": "v"}],
            },
            "status": {
                "observedGeneration": 3,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "ClusterRoleWidened",
                        "message": "...",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            },
        }
    )
    assert policy.metadata.generation == policy.status.observed_generation == 3
    assert policy.status.conditions[0].reason == "ClusterRoleWidened"
