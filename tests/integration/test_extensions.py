"""Extensions on the embedded API server (the same admission chain and CRD schema as the real one,
tests/realapi/test_extensions.py): the policy's spec.extensions and the request's spec.extends are
accepted, an extension moves the grant's end without a new binding, and a widening one is refused."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant.client import Client
from jitgrant.models.vocabulary import parse_time
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until


def test_an_extension_moves_the_end_of_the_same_binding_and_a_wider_one_is_refused(env: Environment) -> None:
    [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    policy["metadata"]["name"] = "extendable"
    policy["spec"]["extensions"] = {"allowed": True, "maxCount": 1, "maxTotalDuration": "1m"}
    env.apply([policy])
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest("long-task", policy="extendable", duration="4s"), client=agent)
    active = wait_for_phase(env, "agents", "long-task", "Active")
    [binding] = jit_bindings(env, "payments")
    before = parse_time(active["status"]["expiresAt"])

    wider = request_manifest(
        "wider", policy="extendable", duration="5s", namespace="ledger", extends="long-task"
    )
    with pytest.raises(ApiException) as refused:
        env.create_request(wider, client=agent)
    assert refused.value.status == 403
    assert (
        "ExtensionRefused: an extension's scope must equal the original's"
        in json.loads(refused.value.body)["message"]
    )

    with Client.from_configuration(agent.configuration, namespace="agents") as client:
        extended = client.extend("long-task", by="5s", justification="INC-1 still draining")
    assert extended.status.expires_at == before + timedelta(seconds=5)
    # Past the old end, the same binding (its uid) still grants: no gap, no new one.
    wait_until(lambda: time.time() > before.timestamp() + 1, timeout=10, what="the old end passed")
    assert [b["metadata"]["uid"] for b in jit_bindings(env, "payments")] == [binding["metadata"]["uid"]]
    ended = wait_for_phase(env, "agents", "long-task", "Expired", timeout=20)
    assert parse_time(ended["status"]["endedAt"]) >= before + timedelta(seconds=5)
    assert jit_bindings(env, "payments") == []


def test_grant_extend_inside_the_grant_block(env: Environment) -> None:
    [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
    policy["metadata"]["name"] = "extendable"
    policy["spec"]["extensions"] = {"allowed": True}
    env.apply([policy])
    # The block releases the grant on its way out: a patch of the agent's own request.
    patch = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}]
    env.allow("agents", role="agent-edit", rules=patch, service_account="oncall-agent")
    agent = env.client_for_service_account("agents", "oncall-agent")
    with Client.from_configuration(agent.configuration, namespace="agents") as client:
        asked = {"policy": "extendable", "namespace": "payments", "cluster_role": "jit-restart-checkout"}
        with client.grant(**asked, duration="20s", justification="INC-1 long task") as grant:
            assert grant.expires_at is not None
            extended = grant.extend(by="30s", justification="INC-1 longer than planned")
            assert extended.status.expires_at == grant.expires_at + timedelta(seconds=30)
            assert [e.by for e in extended.status.extensions] == ["30s"]
