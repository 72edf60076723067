"""Guardrails for agents that loop (identity-and-approvals.md, "Guardrails") on a real kube-apiserver: one
open request per
requester and scope, refused at admission with AlreadyRequested, and idempotent retries by requestKey.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.client import Client
from jitgrant.models.vocabulary import APPROVE_ANNOTATION, EXISTING_REQUEST_MARKER
from jitgrant_testing.environment import EXAMPLES, load_manifests, wait_until
from jitgrant_testing.realenv import RealEnvironment

from .test_jitgrant import NS, request, unique

POLICY = "loop-guard-pending"


class Recorder:
    """Stands in for the operator's notifier: every transition the approvers would be told of."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def transition(self, request: Any, *, phase: Any, **_: Any) -> None:
        self.seen.append((request.metadata.name, str(phase)))


@pytest.fixture(scope="module")
def agent(real_env: RealEnvironment) -> ApiClient:
    return real_env.client_for_service_account(NS, "oncall-agent")


@pytest.fixture(scope="module")
def pending_policy(real_env: RealEnvironment) -> str:
    """examples/prod-approval renamed: every request waits for a human, so each open one notifies."""
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy["metadata"]["name"] = POLICY
    policy["spec"]["approval"]["approvers"] = {"groups": ["jitgrant:approvers"]}
    policy["spec"]["limits"] = {"oneOpenPerScope": True}  # the product's default (the harness opts out)
    real_env.apply([policy])
    return POLICY


@pytest.fixture
def notifications(real_env: RealEnvironment) -> Iterator[Recorder]:
    runtime = real_env.operator.runtime
    assert runtime is not None
    before, recorder = runtime.notifier, Recorder()
    runtime.notifier = recorder
    try:
        yield recorder
    finally:
        runtime.notifier = before


def _filed(real_env: RealEnvironment, justification: str) -> list[dict[str, Any]]:
    listed = CustomObjectsApi(real_env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )
    return [item for item in listed["items"] if item["spec"].get("justification") == justification]


def _refused_records(env: RealEnvironment, names: set[str]) -> list[dict[str, Any]]:
    if not env.audit_file.exists():
        return []
    records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
    return [
        r["event"]
        for r in records
        if r.get("kind") == "record"
        and r["event"]["type"] == "refused"
        and r["event"]["requestName"] in names
    ]


@pytest.fixture
def justification(real_env: RealEnvironment) -> Iterator[str]:
    """A justification of the test's own; its requests are deleted after it (one open per scope)."""
    text = f"INC-{secrets.randbelow(10**9)} pods stuck"
    yield text
    api = CustomObjectsApi(real_env.admin)
    for item in _filed(real_env, text):
        api.delete_namespaced_custom_object(
            "jitgrant.dev", "v1alpha1", NS, "accessrequests", item["metadata"]["name"]
        )
    wait_until(lambda: not _filed(real_env, text), timeout=30, what="the test's requests deleted")


def test_a_looping_agent_leaves_one_open_request_and_one_approver_notification(
    real_env: RealEnvironment,
    agent: ApiClient,
    pending_policy: str,
    notifications: Recorder,
    justification: str,
) -> None:
    refusals: list[str] = []
    asked: set[str] = set()
    for _ in range(100):
        body = request(unique("loop"), policy=pending_policy, duration="8s", justification=justification)
        asked.add(body["metadata"]["name"])
        try:
            real_env.create_request(body, client=agent)
        except ApiException as exc:
            assert exc.status == 409, exc.body
            refusals.append(json.loads(exc.body)["message"])
    assert len(refusals) >= 90, f"only {len(refusals)} of 100 duplicates were refused at admission"

    def settled() -> list[dict[str, Any]] | None:
        items = _filed(real_env, justification)
        return items if all((item.get("status") or {}).get("phase") for item in items) else None

    items = wait_until(settled, timeout=30, what="every stored request decided")
    still_open = [item for item in items if item["status"]["phase"] == "Pending"]
    assert len(still_open) == 1, [(i["metadata"]["name"], i["status"]["phase"]) for i in items]
    name = still_open[0]["metadata"]["name"]
    # Any that admission let through before the index heard of the first were denied by the reconciler.
    for other in items:
        if other["metadata"]["name"] != name:
            assert other["status"]["reason"] == "AlreadyRequested", other["status"]
    assert f"AlreadyRequested: you already have {name} Pending" in refusals[-1]
    assert f"{EXISTING_REQUEST_MARKER}: {NS}/{name}" in refusals[-1]
    filed = {item["metadata"]["name"] for item in items}
    told = [seen for seen in notifications.seen if seen[0] in filed]
    assert told == [(name, "Pending")]
    # The trail is bounded: the refusals are audited at most once per requester per minute, each
    # record saying how many it stands for.
    refused = wait_until(lambda: _refused_records(real_env, asked), timeout=10, what="the refusal audited")
    assert 1 <= len(refused) <= 2, refused
    assert refused[0]["reason"].startswith("AlreadyRequested: ")


def test_duplicates_admitted_by_a_replica_that_had_not_heard_of_the_first_are_denied_by_the_leader(
    real_env: RealEnvironment,
    agent: ApiClient,
    pending_policy: str,
    notifications: Recorder,
    justification: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every replica answers admission from its own index; one that has not yet heard of the first
    request (another replica admitted it a moment ago, or it restarted and its list is not done)
    admits the duplicates. The leader's first decision refuses all but one, whatever order."""
    runtime = real_env.operator.runtime
    assert runtime is not None
    monkeypatch.setattr(runtime.open_requests, "existing_for", lambda body: None)
    names = [unique("race") for _ in range(6)]
    for name in names:
        real_env.create_request(
            request(name, policy=pending_policy, justification=justification), client=agent
        )

    def settled() -> list[dict[str, Any]] | None:
        items = _filed(real_env, justification)
        done = len(items) == len(names) and all((i.get("status") or {}).get("phase") for i in items)
        return items if done else None

    items = wait_until(settled, timeout=30, what="every admitted duplicate decided")
    phases = sorted((i["status"]["phase"], i["status"]["reason"]) for i in items)
    assert phases == [("Denied", "AlreadyRequested")] * 5 + [("Pending", "AwaitingApproval")], phases
    [kept] = [i["metadata"]["name"] for i in items if i["status"]["phase"] == "Pending"]
    for item in items:
        if item["status"]["phase"] == "Denied":
            # Names the open one it lost to: the kept one, or (when it was decided before the kept one
            # reached the leader's watch) an earlier duplicate that then lost to the kept one.
            assert any(f"you already have {n} Pending" in item["status"]["message"] for n in names)
    assert [seen for seen in notifications.seen if seen[0] in names] == [(kept, "Pending")]


def test_a_retry_with_the_same_request_key_gets_the_existing_request_and_the_dry_run_says_so(
    real_env: RealEnvironment, agent: ApiClient, pending_policy: str, justification: str
) -> None:
    asked: dict[str, Any] = {
        "policy": pending_policy,
        "namespace": "payments",
        "cluster_role": "jit-restart-checkout",
        "justification": justification,
        "duration": "6s",
    }
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        first = client.request(**asked)
        real_env.wait_for_phase(NS, first.metadata.name, "Pending", timeout=30)
        assert first.spec.request_key  # the client sends one by default
        again = client.request(**asked)
        assert again.metadata.name == first.metadata.name
        check = client.check(**asked)
        assert (check.outcome, check.reason) == ("denied", "AlreadyRequested")
        assert f"you already have {first.metadata.name} Pending" in check.message
        # Another attempt for the same scope (a different key) is refused, with the reason to branch on.
        with pytest.raises(Exception) as refused:
            client.request(**asked, request_key=unique("other-attempt"))
    assert getattr(refused.value, "reason", None) == "AlreadyRequested"
    assert len([i for i in _filed(real_env, justification) if i["status"].get("phase") == "Pending"]) == 1


# --- §6: approvals with reasons, duration floors --------------------------------------------------

STRICT = "loop-guard-strict"


@pytest.fixture(scope="module")
def strict_policy(real_env: RealEnvironment) -> str:
    """A fixed 10m duration (minDuration = maxDuration) and approvals that need a 12-character reason."""
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy["metadata"]["name"] = STRICT
    policy["spec"]["approval"]["approvers"] = {"groups": ["jitgrant:approvers"]}
    policy["spec"]["limits"] = {"oneOpenPerScope": True}  # the product's default (the harness opts out)
    policy["spec"]["approval"]["reasonRequired"] = True
    policy["spec"]["approval"]["minReasonLength"] = 12
    policy["spec"]["minDuration"] = policy["spec"]["maxDuration"] = "10m"
    real_env.apply([policy])
    real_env.allow_to_approve(NS, user="approver")
    return STRICT


def _refused(call: Any, status: int = 403) -> str:
    with pytest.raises(ApiException) as refused:
        call()
    assert refused.value.status == status, refused.value.body
    message: str = json.loads(refused.value.body)["message"]
    return message


def test_a_duration_off_a_fixed_window_is_refused_at_admission_with_the_range(
    real_env: RealEnvironment, agent: ApiClient, strict_policy: str, justification: str
) -> None:
    for asked in ("1s", "9m"):
        body = request(unique("short"), policy=strict_policy, duration=asked, justification=justification)
        message = _refused(lambda body=body: real_env.create_request(body, client=agent))
        assert "PolicyRefused: duration" in message
        assert f"shorter than policy {STRICT}'s minDuration 10m (ask for exactly 10m)" in message
    assert _filed(real_env, justification) == []
    with Client.from_configuration(agent.configuration, namespace=NS) as client:
        check = client.check(
            policy=strict_policy,
            namespace="payments",
            cluster_role="jit-restart-checkout",
            justification=justification,
            duration="1s",
        )
    assert (check.outcome, check.reason) == ("denied", "PolicyRefused")
    assert "ask for exactly 10m" in check.message
    # No duration named: the policy's (the fixed 10m) is taken, and filed.
    name = unique("fixed")
    body = request(name, policy=strict_policy, justification=justification)
    del body["spec"]["duration"]
    real_env.create_request(body, client=agent)
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)


def test_an_approval_without_the_policys_reason_is_refused_by_the_webhook(
    real_env: RealEnvironment, agent: ApiClient, strict_policy: str, justification: str
) -> None:
    approver = real_env.client_for_user("approver")
    name = unique("reasoned")
    real_env.create_request(
        request(name, policy=strict_policy, duration="10m", justification=justification), client=agent
    )
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    for said in ("", "   ", "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b", "ok"):
        message = _refused(
            lambda said=said: real_env.annotate_request(NS, name, {APPROVE_ANNOTATION: said}, client=approver)
        )
        assert f"policy {STRICT} requires a reason of at least 12 character(s) for an approval" in message
    assert real_env.get_request(NS, name)["status"]["phase"] == "Pending"
    real_env.annotate_request(NS, name, {APPROVE_ANNOTATION: "INC-7 checked the rollout"}, client=approver)
    active = real_env.wait_for_phase(NS, name, "Active", timeout=30)
    [entry] = active["status"]["approvals"]
    assert entry["reason"] == "INC-7 checked the rollout"


# --- §2: caps and rates per requester -------------------------------------------------------------

CAPPED = "loop-guard-capped"


@pytest.fixture(scope="module")
def capped_policy(real_env: RealEnvironment) -> str:
    """One open request per requester and two per hour, over two namespaces (so two scopes)."""
    [policy] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    policy["metadata"]["name"] = CAPPED
    policy["spec"]["namespaces"] = ["payments", "orders"]
    policy["spec"]["approval"]["approvers"] = {"groups": ["jitgrant:approvers"]}
    policy["spec"]["limits"] = {"oneOpenPerScope": True, "maxOpenPerRequester": 1, "maxRequestsPerHour": 2}
    real_env.apply([policy])
    return CAPPED


def test_caps_on_open_requests_and_requests_per_hour_are_refused_with_when_a_slot_frees(
    real_env: RealEnvironment, agent: ApiClient, capped_policy: str, justification: str
) -> None:
    api = CustomObjectsApi(real_env.admin)
    first = unique("cap")
    real_env.create_request(request(first, policy=capped_policy, justification=justification), client=agent)
    real_env.wait_for_phase(NS, first, "Pending", timeout=30)
    other = request(unique("cap"), policy=capped_policy, justification=justification)
    other["spec"]["namespace"] = "orders"  # another scope: not a duplicate, but past the open cap
    message = _refused(lambda: real_env.create_request(other, client=agent))
    assert "LimitReached: policy loop-guard-capped allows 1 open request(s) per requester" in message
    assert f"you have 1 ({first} Pending); the next slot frees when one of them ends" in message

    api.delete_namespaced_custom_object("jitgrant.dev", "v1alpha1", NS, "accessrequests", first)
    wait_until(
        lambda: first not in {i["metadata"]["name"] for i in _filed(real_env, justification)},
        timeout=30,
        what="the first request gone",
    )
    real_env.create_request(other, client=agent)  # its slot is free now
    real_env.wait_for_phase(NS, other["metadata"]["name"], "Pending", timeout=30)
    api.delete_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests", other["metadata"]["name"]
    )
    wait_until(lambda: not _filed(real_env, justification), timeout=30, what="both requests gone")
    third = request(unique("cap"), policy=capped_policy, justification=justification)
    message = _refused(lambda: real_env.create_request(third, client=agent))
    assert "LimitReached: policy loop-guard-capped allows 2 request(s) per hour per requester" in message
    assert "you filed 2 in the last hour; the next slot frees at 20" in message
