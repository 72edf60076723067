"""Security invariants 5 and 6 end to end: inline rules only as an opt-in that the API server
itself polices, and an audit record accepted before any access exists."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until

LOGS_RULE = {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed


@pytest.fixture
def inline_env() -> Iterator[Environment]:
    with Environment(inline_rules=True, sweep_interval=timedelta(seconds=1)) as env:
        env.apply(load_manifests(EXAMPLES / "inline-rules-policy.yaml"))
        env.allow_to_request("agents", user="ci-bot", group="ci-agents")
        yield env


def _roles(env: Environment, namespace: str) -> list[dict[str, Any]]:
    result = RbacAuthorizationV1Api(env.admin).list_namespaced_role(namespace)
    items: list[dict[str, Any]] = env.admin.sanitize_for_serialization(result)["items"]
    return [
        r
        for r in items
        if (r["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "jitgrant"
    ]


def test_inline_rules_become_a_role_and_binding_that_expire_together(inline_env: Environment) -> None:
    bot = inline_env.client_for_user("ci-bot", groups=("ci-agents",))
    manifest = request_manifest(policy="read-logs-inline", duration="3s", clusterRole=None, rules=[LOGS_RULE])
    del manifest["spec"]["clusterRole"]
    inline_env.create_request(manifest, client=bot)
    active = wait_for_phase(inline_env, "agents", "restart-checkout", "Active")
    [role] = _roles(inline_env, "payments")
    assert role["rules"] == [{**LOGS_RULE}]
    assert active["status"]["grant"]["role"] == role["metadata"]["name"]
    [binding] = jit_bindings(inline_env, "payments")
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "User", "name": "ci-bot", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    wait_for_phase(inline_env, "agents", "restart-checkout", "Expired", timeout=15)
    assert _roles(inline_env, "payments") == [] and jit_bindings(inline_env, "payments") == []


def test_inline_rules_wider_than_the_policy_are_denied_with_what_is_allowed(inline_env: Environment) -> None:
    bot = inline_env.client_for_user("ci-bot", groups=("ci-agents",))
    wider = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}
    manifest = request_manifest(policy="read-logs-inline", rules=[wider])
    del manifest["spec"]["clusterRole"]
    inline_env.create_request(manifest, client=bot)
    denied = wait_for_phase(inline_env, "agents", "restart-checkout", "Denied")
    assert "delete" in denied["status"]["message"] and "get, list" in denied["status"]["message"]
    assert _roles(inline_env, "payments") == []


def test_without_the_opt_in_inline_rules_are_refused(env: Environment) -> None:
    env.apply(load_manifests(EXAMPLES / "inline-rules-policy.yaml"))
    env.allow_to_request("agents", user="ci-bot", group="ci-agents")
    bot = env.client_for_user("ci-bot", groups=("ci-agents",))
    manifest = request_manifest(policy="read-logs-inline", rules=[LOGS_RULE])
    del manifest["spec"]["clusterRole"]
    env.create_request(manifest, client=bot)
    denied = wait_for_phase(env, "agents", "restart-checkout", "Denied")
    assert "inline" in denied["status"]["message"]
    assert _roles(env, "payments") == []


def test_the_api_server_refuses_a_cluster_role_off_the_operators_allowlist(env: Environment) -> None:
    """Even if a policy names it, the operator cannot bind a ClusterRole outside its `bind` allowlist."""
    env.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "jit-delete-everything"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]}],
            },
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "too-wide"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-delete-everything"}],
                },
            },
        ]
    )
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(policy="too-wide", clusterRole="jit-delete-everything"), client=agent)
    failed = wait_for_phase(env, "agents", "restart-checkout", "Failed")
    assert failed["status"]["reason"] == "GrantRefusedByCluster"
    assert "jit-delete-everything" in failed["status"]["message"]
    assert jit_bindings(env, "payments") == []


def _write_audit_config(tmp_path: Path, **overrides: Any) -> Path:
    config = {
        "spoolDir": str(tmp_path / "spool"),
        "sinks": [
            {"type": "webhook", "url": f"http://127.0.0.1:{_closed_port()}/audit", "timeoutSeconds": 0.5}
        ],
        "retryInitialSeconds": 0.2,
        "retryMaxSeconds": 1,
        **overrides,
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env_with_audit(config: Path) -> Environment:
    return Environment(sweep_interval=timedelta(seconds=1), audit_config=config)


def _prepare(env: Environment) -> None:
    env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
    env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
    env.allow_to_request("agents", service_account="oncall-agent")


def test_no_grant_when_its_audit_record_cannot_be_accepted(tmp_path: Path) -> None:
    """Fail closed: the sink is down and the platform asked for sink acceptance before a grant."""
    config = _write_audit_config(tmp_path, acceptance="sinks", acceptanceTimeoutSeconds=1)
    with _env_with_audit(config) as env:
        _prepare(env)
        agent = env.client_for_service_account("agents", "oncall-agent")
        env.create_request(request_manifest(duration="1m"), client=agent)
        failed = wait_for_phase(env, "agents", "restart-checkout", "Failed")
        assert failed["status"]["reason"] == "AuditUnavailable"
        assert "audit record could not be stored" in failed["status"]["message"]
        assert jit_bindings(env, "payments") == []
        with pytest.raises(ApiException) as refused:
            env.restart_deployment("payments", "checkout", client=agent)
        assert refused.value.status in (403, 404)


def test_revocation_is_on_time_while_the_audit_sink_is_down(tmp_path: Path) -> None:
    """The default acceptance is the on-disk spool: grants proceed, and expiry never waits on a sink."""
    config = _write_audit_config(tmp_path)
    with _env_with_audit(config) as env:
        _prepare(env)
        agent = env.client_for_service_account("agents", "oncall-agent")
        env.create_request(request_manifest(duration="3s"), client=agent)
        active = wait_for_phase(env, "agents", "restart-checkout", "Active")
        assert jit_bindings(env, "payments")
        started = time.monotonic()
        expired = wait_for_phase(env, "agents", "restart-checkout", "Expired", timeout=15)
        assert time.monotonic() - started < 6
        assert expired["status"]["endedAt"] >= active["status"]["expiresAt"]
        wait_until(lambda: not jit_bindings(env, "payments"), what="the binding to go")
        assert env.operator.runtime is not None and env.operator.runtime.audit.depth() > 0
