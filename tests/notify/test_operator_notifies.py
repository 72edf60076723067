"""The operator notifies from its one transition-recording point: a pending request reaches the
receiver with the approve command, the decision and the end follow, and a notifier that cannot post
leaves the grant as fast and as complete as without one."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from jitgrant.notify import Notifier, NotifierConfig
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .receiver import Receiver, receiver

NS = "agents"


def request(example: str, name: str) -> dict[str, Any]:
    [manifest] = load_manifests(EXAMPLES / "requests" / example)
    manifest["metadata"]["name"] = name
    manifest["spec"]["duration"] = "3s"
    return manifest


@pytest.fixture
def hooked() -> Iterator[tuple[Environment, Receiver, list[Notifier], CollectorRegistry]]:
    notifiers: list[Notifier] = []
    registry = CollectorRegistry()
    with receiver() as got:
        configs = [
            NotifierConfig(
                name="hook", type="webhook", url=got.url, events=("pending", "decided", "expired")
            ),
            NotifierConfig(name="down", type="slack", url="http://127.0.0.1:9/closed", timeoutSeconds=1),
        ]

        def attach(runtime: Runtime) -> None:
            runtime.notifier = Notifier(configs, registry=registry)
            notifiers.append(runtime.notifier)

        try:
            with Environment(runtime_hook=attach) as env:
                env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
                env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
                env.apply(load_manifests(EXAMPLES / "prod-approval" / "policy.yaml"))
                env.create_deployment("payments", "checkout")
                env.allow_to_request(NS, service_account="oncall-agent")
                env.allow_to_approve(NS, group="sre-oncall")
                yield env, got, notifiers, registry
        finally:
            for notifier in notifiers:
                notifier.close()


def test_pending_decided_and_expired_reach_the_receiver(
    hooked: tuple[Environment, Receiver, list[Notifier], CollectorRegistry],
) -> None:
    env, got, _, registry = hooked
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(request("restart-checkout-prod.yaml", "prod"), client=agent)
    pending = got.wait_for(lambda body: body["event"] == "pending")
    assert pending["request"] == {"namespace": NS, "name": "prod"}
    assert pending["commands"]["approve"] == 'jitgrant approve prod -n agents --reason "..."'
    assert pending["scope"] == "clusterrole/jit-restart-checkout in payments"
    assert pending["requester"] == "system:serviceaccount:agents:oncall-agent"

    alice = env.client_for_user("alice", groups=("sre-oncall",))
    env.annotate_request(NS, "prod", {"jitgrant.dev/approve": "ok"}, client=alice)
    decided = got.wait_for(lambda body: body["event"] == "decided")
    assert decided["phase"] == "Approved"
    expired = got.wait_for(lambda body: body["event"] == "expired", timeout=30)
    assert expired["request"]["name"] == "prod" and expired["expires"].endswith("Z")
    # The closed port failed every time, and the grant went through all the same.
    assert (
        registry.get_sample_value(
            "jitgrant_notifications_total", {"notifier": "down", "event": "pending", "result": "failed"}
        )
        or 0
    ) >= 1


def test_a_policys_notifications_choose_the_notifiers_and_events(
    hooked: tuple[Environment, Receiver, list[Notifier], CollectorRegistry],
) -> None:
    """Issue 31 §6: spec.notifications overrides the operator's default per policy: a quiet policy
    sends nothing, a loud one sends the events it names (here `active`, which the notifier's own list
    leaves out) and only through the notifier it names."""
    env, got, _, registry = hooked
    [base] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    quiet, loud = copy.deepcopy(base), copy.deepcopy(base)
    quiet["metadata"]["name"], quiet["spec"]["notifications"] = "quiet", {"notifiers": []}
    loud["metadata"]["name"] = "loud"
    loud["spec"]["notifications"] = {"notifiers": ["hook"], "events": ["active"]}
    env.apply([quiet, loud])
    agent = env.client_for_service_account(NS, "oncall-agent")
    for policy in ("quiet", "loud"):
        body = request("restart-checkout.yaml", f"under-{policy}")
        body["spec"]["policy"] = policy
        env.create_request(body, client=agent)
        env.wait_for_phase(NS, f"under-{policy}", "Expired", timeout=30)
    got.wait_for(lambda body: body["request"]["name"] == "under-loud" and body["event"] == "active")
    assert [
        (b["request"]["name"], b["event"]) for b in got.bodies if b["request"]["name"].startswith("under-")
    ] == [("under-loud", "active")]
    # And nothing was even attempted through the other notifier for the loud policy's events.
    assert (
        registry.get_sample_value(
            "jitgrant_notifications_total", {"notifier": "down", "event": "active", "result": "failed"}
        )
        is None
    )


def test_a_policy_naming_a_notifier_the_operator_lacks_is_refused_at_apply(
    hooked: tuple[Environment, Receiver, list[Notifier], CollectorRegistry],
) -> None:
    env = hooked[0]
    [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    policy["metadata"]["name"] = "pager"
    policy["spec"]["notifications"] = {"notifiers": ["pagerduty"]}
    with pytest.raises(ApiException) as refused:
        env.apply([policy])
    assert refused.value.status == 422
    assert "spec.notifications.notifiers names 'pagerduty'" in str(refused.value.body)
    assert "configured: down, hook" in str(refused.value.body)
