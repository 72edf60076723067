"""Security invariants end to end (named in docs/architecture.md): bind-by-allowlist (inline rules
only as an opt-in that the API server itself polices), recorded-before-granted, and, tried as an
attacker would, no-orphaned-access and never-adopt."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.own import ClusterApi
from jitgrant.models.vocabulary import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    REQUEST_UID_LABEL,
    REVOKE_ANNOTATION,
)
from jitgrant_testing.environment import (
    EXAMPLES,
    GRANTS_NAMESPACE,
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    Environment,
    load_manifests,
)

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
    # The API server's escalation check refuses the operator's own identity the binding...
    operator = env.client_for_service_account(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
    binding = {
        "metadata": {"name": "jit-too-wide-probe"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "jit-delete-everything",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": "agents"}],
    }
    with pytest.raises(ApiException) as escalation:
        RbacAuthorizationV1Api(operator).create_namespaced_role_binding("payments", binding)
    assert escalation.value.status == 403 and "deployments" in str(escalation.value.body)
    # ...and, the policy being judged not Ready (ClusterRoleNotBindable), its requests are refused at
    # admission and never stored (issue 24 §5), once the webhook's watch has the condition.
    runtime = env.operator.runtime
    assert runtime is not None
    wait_until(
        lambda: (state := runtime.watched_ready.get("too-wide")) is not None and state.status == "False",
        what="policy too-wide judged not Ready",
    )
    agent = env.client_for_service_account("agents", "oncall-agent")
    with pytest.raises(ApiException) as refused:
        env.create_request(
            request_manifest(policy="too-wide", clusterRole="jit-delete-everything"), client=agent
        )
    assert refused.value.status == 403
    assert "PolicyNotReady" in str(refused.value.body) and "jit-delete-everything" in str(refused.value.body)
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


# --- The write-ahead grant plan and proven ownership, tried as an attacker would -------------------


@pytest.fixture
def slow_sweep_env() -> Iterator[Environment]:
    """A sweep that never runs during the test: whatever is removed, the reconciler removed."""
    with Environment(sweep_interval=timedelta(minutes=10)) as env:
        _prepare(env)
        env.create_deployment("payments", "checkout")
        yield env


def _around_calls(env: Environment, name: str, *, before: Any = None, after: Any = None) -> list[str]:
    """Run `before`/`after` (blocking, given the call's arguments) around the operator's first call of
    the client method `name` in its own cluster; returns a list that records that it fired."""
    runtime = env.operator.runtime
    assert runtime is not None and isinstance(runtime.own, ClusterApi)
    own = runtime.own
    real = own.call
    fired: list[str] = []

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        first = getattr(fn, "__name__", "") == name and not fired
        if first:
            fired.append(name)
            if before is not None:
                await asyncio.to_thread(before, *args)
        result = await real(fn, *args, **kwargs)
        if first and after is not None:
            await asyncio.to_thread(after, *args)
        return result

    own.call = call  # type: ignore[method-assign]
    return fired


def test_revoking_while_the_grant_is_issued_leaves_no_binding(slow_sweep_env: Environment) -> None:
    """The revoke lands between the binding's creation and the status write, which then fails with a
    409: the grant plan recorded before anything was created is what the revocation removes."""
    env = slow_sweep_env
    fired = _around_calls(
        env,
        "create_namespaced_role_binding",
        after=lambda *_: env.annotate_request(
            "agents", "restart-checkout", {REVOKE_ANNOTATION: "revoked mid-issue"}, client=env.admin
        ),
    )
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="10m"), client=agent)
    revoked = wait_for_phase(env, "agents", "restart-checkout", "Revoked")
    assert fired, "the race was not provoked"
    ended = time.monotonic()
    wait_until(lambda: not jit_bindings(env, "payments"), timeout=2, what="the binding to go within 2 s")
    assert time.monotonic() - ended < 2
    grant = revoked["status"].get("grant")
    assert grant is not None, "status says there was no grant although a binding was created"
    assert any(obj["kind"] == "RoleBinding" for obj in grant["objects"])
    with pytest.raises(ApiException) as refused:
        env.restart_deployment("payments", "checkout", client=agent)
    assert refused.value.status == 403


def _planted_binding(name: str, uid: str) -> dict[str, Any]:
    """A RoleBinding with everything jitgrant writes on its own, except the operator's seal."""
    return {
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: uid},
            "annotations": {"jitgrant.dev/request": "agents/restart-checkout"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}],
    }


def test_a_planted_role_binding_under_the_grant_name_fails_the_request_and_is_left_alone(
    slow_sweep_env: Environment,
) -> None:
    env = slow_sweep_env
    rbac = RbacAuthorizationV1Api(env.admin)

    def plant(namespace: str, body: Any) -> None:
        meta = body["metadata"] if isinstance(body, dict) else body.metadata
        name = meta["name"] if isinstance(meta, dict) else meta.name
        uid = (meta["labels"] if isinstance(meta, dict) else meta.labels)[REQUEST_UID_LABEL]
        rbac.create_namespaced_role_binding(namespace, _planted_binding(name, uid))

    fired = _around_calls(env, "create_namespaced_role_binding", before=plant)
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="10m"), client=agent)
    failed = wait_for_phase(env, "agents", "restart-checkout", "Failed")
    assert fired
    assert failed["status"]["reason"] == "NameCollision", failed["status"]
    [planted] = jit_bindings(env, "payments")
    assert planted["subjects"][0]["name"] == "mallory"  # never adopted, never deleted
    assert not any(
        r["event"]["type"] == "granted" and r["event"]["binding"] == planted["metadata"]["name"]
        for r in _audit_records(env)
    ), "the planted binding was reported as the grant"


def _audit_records(env: Environment) -> list[dict[str, Any]]:
    lines = env.audit_file.read_text().splitlines()
    return [r for r in (json.loads(line) for line in lines if line.strip()) if r.get("kind") == "record"]


def test_the_sweep_never_deletes_a_labelled_object_it_cannot_prove_it_made(env: Environment) -> None:
    """Someone who may only write ServiceAccounts and Secrets labels objects as ours: an
    important-controller in kube-system (outside the grants namespace the sweep does not even list
    it: the operator has no rights on ServiceAccounts there) and one, with a Secret, in the grants
    namespace (listed, counted, never deleted)."""
    core = CoreV1Api(env.admin)
    planted = {
        "name": "important-controller",
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, REQUEST_UID_LABEL: "made-up"},
        "annotations": {"jitgrant.dev/expires-at": "2020-01-01T00:00:00Z"},
    }
    for namespace in ("kube-system", GRANTS_NAMESPACE):
        core.create_namespaced_service_account(namespace, {"metadata": planted})
    core.create_namespaced_secret(GRANTS_NAMESPACE, {"metadata": planted, "stringData": {"k": "v"}})
    runtime = env.operator.runtime
    assert runtime is not None

    time.sleep(2.5)  # more than two sweeps
    for namespace in ("kube-system", GRANTS_NAMESPACE):
        survivor = core.read_namespaced_service_account("important-controller", namespace)
        assert survivor.metadata.deletion_timestamp is None
    assert (
        core.read_namespaced_secret("important-controller", GRANTS_NAMESPACE).metadata.deletion_timestamp
        is None
    )
    metrics = runtime.metrics.render()
    assert b'jitgrant_unproven_objects{cluster="in-cluster",kind="ServiceAccount"} 1.0' in metrics
    assert b'jitgrant_unproven_objects{cluster="in-cluster",kind="Secret"} 1.0' in metrics
