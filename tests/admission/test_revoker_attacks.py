"""Issue 11 §8: the `revoked` audit record did not say who revoked. Now the mutating webhook stamps the
caller who sets jitgrant.dev/revoke (sealed, as approvals are), the validating webhook refuses a
forged stamp, and the status and the audit record name the revoker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests, wait_until

REQUEST: dict[str, Any] = {
    "apiVersion": "jitgrant.dev/v1alpha1",
    "kind": "AccessRequest",
    "metadata": {"name": "restart-checkout", "namespace": "agents"},
    "spec": {
        "policy": "oncall-restart",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "5m",
        "justification": "INC-1 stuck pods",
    },
}


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1)) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        environment.create_deployment("payments", "checkout")
        environment.allow_to_request("agents", service_account="oncall-agent")
        environment.allow_to_approve("agents", user="alice")
        environment.allow_to_approve("agents", user="mallory")
        agent = environment.client_for_service_account("agents", "oncall-agent")
        environment.create_request(REQUEST, client=agent)
        environment.wait_for_phase("agents", "restart-checkout", "Active")
        yield environment


def revoked_records(env: Environment) -> list[dict[str, Any]]:
    """The `revoked` records, once written (after the status: a record never holds a revocation up)."""

    def written() -> list[dict[str, Any]] | None:
        lines = env.audit_file.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        found = [r["event"] for r in records if r.get("kind") == "record" and r["event"]["type"] == "revoked"]
        return found or None

    return wait_until(written, timeout=10, what="the revoked audit record")


def test_the_revoked_record_and_status_name_who_revoked(env: Environment) -> None:
    alice = env.client_for_user("alice", groups=("sre",))
    env.annotate_request(
        "agents", "restart-checkout", {"jitgrant.dev/revoke": "INC-9 agent looping"}, client=alice
    )
    revoked = env.wait_for_phase("agents", "restart-checkout", "Revoked")
    assert revoked["status"]["message"] == "revoked by alice: INC-9 agent looping"
    [record] = revoked_records(env)
    assert record["reason"] == "revoked by alice: INC-9 agent looping"
    assert env.jit_bindings("payments") == []


def test_a_forged_stamp_naming_someone_else_is_refused(env: Environment) -> None:
    mallory = env.client_for_user("mallory", groups=("devs",))
    forged = json.dumps({"username": "alice", "groups": ["sre"], "reason": "x", "seal": "v1:00"})
    with pytest.raises(ApiException) as raised:
        env.annotate_request(
            "agents", "restart-checkout", {"jitgrant.dev/revoked-by": forged}, client=mallory
        )
    assert "annotation jitgrant.dev/revoked-by is written by the jitgrant webhook" in str(raised.value.body)
    assert env.get_request("agents", "restart-checkout")["status"]["phase"] == "Active"


def test_revoking_with_a_forged_stamp_records_the_real_caller(env: Environment) -> None:
    mallory = env.client_for_user("mallory", groups=("devs",))
    forged = json.dumps({"username": "alice", "groups": ["sre"], "reason": "x", "seal": "v1:00"})
    env.annotate_request(
        "agents",
        "restart-checkout",
        {"jitgrant.dev/revoke": "done", "jitgrant.dev/revoked-by": forged},
        client=mallory,
    )
    revoked = env.wait_for_phase("agents", "restart-checkout", "Revoked")
    assert revoked["status"]["message"] == "revoked by mallory: done"
    assert [record["reason"] for record in revoked_records(env)] == ["revoked by mallory: done"]
