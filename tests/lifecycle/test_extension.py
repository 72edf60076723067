"""The extension rules (lifecycle/extension.py) as pure functions: who may extend, what scope, how
often and how far, when a human must approve, and that an applied extension is not cut back by the
live check against maxDuration while the policy still allows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitgrant.lifecycle import Action
from jitgrant.lifecycle.extension import (
    extended_end,
    extension_needs_approval,
    extension_refusal,
)
from jitgrant.lifecycle.transitions import live_grant_step
from jitgrant.models import AccessRequest, GrantPolicySpec

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
AGENT = "system:serviceaccount:agents:oncall-agent"
ENDS = NOW + timedelta(minutes=5)


def policy(**overrides: Any) -> GrantPolicySpec:
    spec: dict[str, Any] = {
        "requesters": {"serviceAccounts": [{"namespace": "agents", "name": "oncall-agent"}]},
        "namespaces": ["payments"],
        "grants": [{"clusterRole": "jit-restart-checkout"}],
        "maxDuration": "15m",
        "extensions": {"allowed": True, "maxCount": 2, "maxTotalDuration": "20m"},
    }
    spec.update(overrides)
    return GrantPolicySpec.model_validate(spec)


def original(*, phase: str = "Active", extensions: tuple[str, ...] = (), **spec: Any) -> AccessRequest:
    body_spec: dict[str, Any] = {
        "policy": "p",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": "10m",
        "requester": {"username": AGENT},
    } | spec
    return AccessRequest.model_validate(
        {
            "metadata": {"name": "orig", "namespace": "agents"},
            "spec": body_spec,
            "status": {
                "phase": phase,
                "activatedAt": NOW - timedelta(minutes=10),
                "expiresAt": ENDS,
                "extensions": [
                    {"request": f"e{i}", "by": by, "at": NOW, "expiresAt": ENDS}
                    for i, by in enumerate(extensions)
                ],
            },
        }
    )


def extension(by: str = "10m", who: str = AGENT, **spec: Any) -> Any:
    body_spec: dict[str, Any] = {
        "policy": "p",
        "namespace": "payments",
        "clusterRole": "jit-restart-checkout",
        "duration": by,
        "extends": "orig",
        "requester": {"username": who},
    } | spec
    return AccessRequest.model_validate(
        {"metadata": {"name": "ext", "namespace": "agents"}, "spec": body_spec}
    ).spec


def refusal(ext: Any, orig: AccessRequest | None = None, pol: GrantPolicySpec | None = None) -> str | None:
    return extension_refusal(
        extension=ext, original=orig if orig is not None else original(), policy=pol or policy(), now=NOW
    )


def test_the_requester_may_extend_within_the_caps() -> None:
    assert refusal(extension()) is None


@pytest.mark.parametrize(
    ("ext", "orig", "pol", "says"),
    [
        (extension(who="mallory"), None, None, "only the requester of orig may extend it (you are mallory)"),
        (extension(namespace="orders"), None, None, "namespace differ"),
        (extension(clusterRole="cluster-admin"), None, None, "cluster_role differ"),
        (
            extension(clusterRole=None, rules=[{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            None,
            None,
            "cluster_role, rules differ",
        ),
        (extension(), original(phase="Pending"), None, "orig is Pending; only an Active grant"),
        (extension(), original(phase="Expired"), None, "orig is Expired"),
        (extension(), None, policy(extensions={}), "does not allow extensions"),
        (extension(), original(extensions=("1m", "1m")), None, "allows at most 2 (spec.extensions.maxCount)"),
        (extension("11m"), original(extensions=("10m",)), None, "maxTotalDuration of 20m (at most 10m more"),
    ],
)
def test_each_refusal_names_why(
    ext: Any, orig: AccessRequest | None, pol: GrantPolicySpec | None, says: str
) -> None:
    found = refusal(ext, orig, pol)
    assert found is not None and says in found, found


def test_a_grant_that_does_not_exist_or_already_ended_its_window_is_refused() -> None:
    assert "does not exist" in (
        extension_refusal(extension=extension(), original=None, policy=policy(), now=NOW) or ""
    )
    late = extension_refusal(extension=extension(), original=original(), policy=policy(), now=ENDS)
    assert late is not None and "only an Active grant may be extended" in late


def test_approval_follows_the_policy_and_auto_approve_up_to() -> None:
    assert not extension_needs_approval(extension=extension(), original=original(), policy=policy())
    human = {"required": True, "approvers": {"users": ["approver"]}}
    strict = policy(approval=human)
    assert extension_needs_approval(extension=extension(), original=original(), policy=strict)
    first_15m_free = policy(
        approval=human,
        extensions={"allowed": True, "maxCount": 3, "maxTotalDuration": "1h", "autoApproveUpTo": "15m"},
    )
    assert not extension_needs_approval(
        extension=extension("10m"), original=original(), policy=first_15m_free
    )
    later = original(extensions=("10m",))
    assert extension_needs_approval(extension=extension("10m"), original=later, policy=first_15m_free)


def test_an_extended_grant_is_held_to_max_duration_plus_what_the_policy_still_allows() -> None:
    # Activated 10m ago for 10m and extended by 10m: 20m in all, past maxDuration 15m.
    base = original(extensions=("10m",))
    extended = base.model_copy(
        update={"status": base.status.model_copy(update={"expires_at": NOW + timedelta(minutes=10)})}
    )
    live = {"now": NOW, "inline_rules_enabled": False, "operator_namespace": "jitgrant"}
    assert live_grant_step(request=extended, policy=policy(), **live) is None
    # A policy that no longer allows extensions cuts it back to maxDuration (continuous authorization).
    step = live_grant_step(request=extended, policy=policy(extensions={}), **live)
    assert step is not None and step.action is Action.SHORTEN
    assert step.wake_at == NOW + timedelta(minutes=5)


def test_extended_end_is_only_for_an_active_extended_grant() -> None:
    status = {"phase": "Active", "expiresAt": "2026-11-22T12:30:00Z", "extensions": [{"request": "e"}]}
    assert extended_end(status) == NOW + timedelta(minutes=30)
    assert extended_end(status | {"extensions": []}) is None
    assert extended_end(status | {"phase": "Expired"}) is None
