"""identity-and-approvals.md, "Text others wrote", on the embedded cluster: free text people read has a length
limit where it enters.
`spec.justification` in the CRD schema (10 KB used to be stored), the approve, deny, revoke and
release reasons in the admission webhooks; each refusal names the field and the limit."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant.models.text import MAX_JUSTIFICATION_LENGTH, MAX_REASON_LENGTH
from jitgrant_testing.agents import bind_agent
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests
from jitgrant_testing.playground import chart_user_cluster_roles

AGENT = "agent-a"
POLICY: dict[str, Any] = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "GrantPolicy",
    "metadata": {"name": "oncall-restart"},
    "spec": {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": AGENT}]},
        "target": {"type": "InCluster"},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
        "approval": {"required": True, "approvers": {"users": ["alice"]}},
    },
}


def request(name: str, justification: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitgrant.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": {"name": name, "namespace": "agents"},
        "spec": {
            "policy": "oncall-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "5m",
            "justification": justification,
        },
    }


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply([copy.deepcopy(POLICY)])
        environment.apply(chart_user_cluster_roles())
        bind_agent(environment, AGENT)
        environment.allow_to_approve("agents", user="alice")
        yield environment


def refusal(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ApiException) as refused:
        call()
    return int(refused.value.status), str(json.loads(refused.value.body)["message"])


def test_a_10kb_justification_is_refused_by_the_schema_and_1024_characters_are_stored(
    env: Environment,
) -> None:
    agent = env.client_for_service_account("agents", AGENT)
    long = request("long", "INC-1 " + "A" * 10_000)
    status, message = refusal(lambda: env.create_request(long, client=agent))
    assert status == 422
    assert "spec.justification" in message and f"{MAX_JUSTIFICATION_LENGTH}" in message, message
    fits = "INC-1 " + "A" * (MAX_JUSTIFICATION_LENGTH - 6)
    stored = env.create_request(request("fits", fits), client=agent)
    assert stored["spec"]["justification"] == fits


def test_overlong_approve_deny_revoke_and_release_reasons_are_refused(env: Environment) -> None:
    agent = env.client_for_service_account("agents", AGENT)
    alice = env.client_for_user("alice")
    env.create_request(request("pending", "INC-2 stuck pods"), client=agent)
    env.wait_for_phase("agents", "pending", "Pending")
    long = "x" * (MAX_REASON_LENGTH + 1)
    for annotation, client, what in (
        ("jitgrant.dev/approve", alice, "a reason"),
        ("jitgrant.dev/deny", alice, "a reason"),
        ("jitgrant.dev/revoke", alice, "a revoke reason"),
        ("jitgrant.dev/release", agent, "a release reason"),
    ):
        status, message = refusal(
            lambda annotation=annotation, client=client: env.annotate_request(
                "agents", "pending", {annotation: long}, client=client
            )
        )
        assert status in (400, 403), (annotation, status)
        assert (
            f"annotation {annotation} is {MAX_REASON_LENGTH + 1} characters; {what} of at most "
            f"{MAX_REASON_LENGTH} is accepted"
        ) in message, message
    # The same annotations with a reason of the limit's length are taken (the request ends released).
    env.annotate_request("agents", "pending", {"jitgrant.dev/release": "y" * MAX_REASON_LENGTH}, client=agent)
