"""Continuous authorization end to end (the invariant policy-changes-apply-to-live-grants): the operator
watches GrantPolicies, and a
narrowed, shortened or deleted policy ends or cuts the live grants under it at once, not at their old
expiry. Each test fails on an operator without the rule: the grant stays Active for its 10 minutes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kubernetes.client import CoreV1Api, CustomObjectsApi

from jitgrant.models import API_GROUP, API_VERSION
from jitgrant_testing.environment import Environment

from .conftest import jit_bindings, request_manifest, wait_for_phase, wait_until


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _patch_policy(env: Environment, name: str, spec: dict[str, Any]) -> None:
    CustomObjectsApi(env.admin).patch_cluster_custom_object(
        API_GROUP, API_VERSION, "grantpolicies", name, {"spec": spec}
    )


def _active(env: Environment) -> dict[str, Any]:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest(duration="10m"), client=agent)
    active = wait_for_phase(env, "agents", "restart-checkout", "Active")
    assert jit_bindings(env, "payments")
    return active


def _event_reasons(env: Environment) -> set[str]:
    return {e.reason for e in CoreV1Api(env.admin).list_namespaced_event("agents").items}


def test_a_namespace_removed_from_the_policy_ends_the_live_grant(env: Environment) -> None:
    _active(env)
    _patch_policy(env, "oncall-restart", {"namespaces": ["orders"]})
    ended = wait_for_phase(env, "agents", "restart-checkout", "Revoked", timeout=15)
    assert ended["status"]["reason"] == "PolicyChanged"
    assert "namespace 'payments' is not in policy oncall-restart" in ended["status"]["message"]
    assert jit_bindings(env, "payments") == []
    wait_until(lambda: "PolicyChanged" in _event_reasons(env), what="a PolicyChanged Event")


def test_a_shortened_max_duration_moves_expires_at(env: Environment) -> None:
    active = _active(env)
    activated = _parse(active["status"]["activatedAt"])
    _patch_policy(env, "oncall-restart", {"maxDuration": "5m", "defaultDuration": "5m"})

    def shortened() -> dict[str, Any] | None:
        status = env.get_request("agents", "restart-checkout")["status"]
        return status if _parse(status["expiresAt"]) < _parse(active["status"]["expiresAt"]) else None

    status = wait_until(shortened, timeout=15, what="a shorter expiresAt")
    assert _parse(status["expiresAt"]) == activated + timedelta(minutes=5)
    assert (status["phase"], status["reason"]) == ("Active", "PolicyChanged")


def test_a_deleted_policy_ends_its_grants(env: Environment) -> None:
    _active(env)
    CustomObjectsApi(env.admin).delete_cluster_custom_object(
        API_GROUP, API_VERSION, "grantpolicies", "oncall-restart"
    )
    ended = wait_for_phase(env, "agents", "restart-checkout", "Revoked", timeout=15)
    assert ended["status"]["reason"] == "PolicyChanged"
    assert "was deleted" in ended["status"]["message"]
    assert jit_bindings(env, "payments") == []
