"""Idle end (issue 31 §3): the pure deadline, recomputed from the log on every look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitgrant.lifecycle.idle import idle_refusal, idle_step
from jitgrant.lifecycle.transitions import Action
from jitgrant.models import AccessRequest, GrantPolicySpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _policy(**extra: object) -> GrantPolicySpec:
    return GrantPolicySpec.model_validate(
        {
            "requesters": {"users": ["alice"]},
            "namespaces": ["payments"],
            "grants": [{"clusterRole": "r"}],
            "idleTimeout": "1m",
            **extra,
        }
    )


def _active(expires: datetime = T0 + timedelta(minutes=10)) -> AccessRequest:
    return AccessRequest.from_object(
        {
            "metadata": {"name": "r", "namespace": "agents"},
            "spec": {"policy": "p", "namespace": "payments", "clusterRole": "r", "duration": "10m"},
            "status": {
                "phase": "Active",
                "activatedAt": T0.isoformat(),
                "expiresAt": expires.isoformat(),
            },
        }
    )


def test_the_deadline_follows_the_last_call() -> None:
    step = idle_step(request=_active(), policy=_policy(), last_call=T0 + timedelta(seconds=50), now=T0)
    assert step is not None and step.action is Action.WAIT and step.wake_at == T0 + timedelta(seconds=110)
    idle = idle_step(
        request=_active(),
        policy=_policy(),
        last_call=T0 + timedelta(seconds=50),
        now=T0 + timedelta(seconds=110),
    )
    assert idle is not None and idle.action is Action.REVOKE and idle.reason == "Idle"
    assert "last API call was at 2026-01-01T00:00:50Z" in idle.message and "idleTimeout is 1m" in idle.message


def test_a_grant_never_used_ends_a_timeout_after_activation() -> None:
    step = idle_step(request=_active(), policy=_policy(), last_call=None, now=T0 + timedelta(minutes=1))
    assert step is not None and step.reason == "Idle" and "made no API call" in step.message


def test_no_timeout_or_a_window_closing_first_changes_nothing() -> None:
    assert idle_step(request=_active(), policy=_policy(idleTimeout=None), last_call=None, now=T0) is None
    short = _active(expires=T0 + timedelta(seconds=30))
    assert idle_step(request=short, policy=_policy(), last_call=None, now=T0) is None


def test_an_idle_timeout_nothing_could_enforce_is_refused() -> None:
    assert idle_refusal(_policy(), has_source=True) is None
    refusal = idle_refusal(_policy(), has_source=False)
    assert refusal is not None and "no activity source for cluster in-cluster" in refusal
