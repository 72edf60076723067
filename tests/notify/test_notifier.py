"""Notifications: the three formats carry what an approver needs, they reach a local receiver, and a
failing or stalled receiver never holds up the caller (its failures are a metric)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from jitgrant.models import AccessRequest, Phase
from jitgrant.notify import Notifier, NotifierConfig, NotifyConfig, notice_for, render

from .receiver import receiver

REQUEST = AccessRequest.model_validate(
    {
        "metadata": {"name": "restart-checkout-prod", "namespace": "agents"},
        "spec": {
            "policy": "prod-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "duration": "10m",
            "justification": "INC-4712 checkout p99 latency",
            "requester": {"username": "system:serviceaccount:agents:oncall-agent"},
        },
    }
)
EXPIRES = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def notifier(kind: str, url: str, **extra: object) -> NotifierConfig:
    return NotifierConfig.model_validate({"name": f"{kind}-test", "type": kind, "url": url, **extra})


def pending() -> object:
    return notice_for(
        REQUEST, phase=Phase.PENDING, reason="AwaitingApproval", message="waiting for 1 approval(s)"
    )


@pytest.mark.parametrize("kind", ["slack", "teams", "webhook"])
def test_each_format_carries_scope_justification_requester_expiry_and_the_commands(kind: str) -> None:
    text = str(render(pending(), notifier(kind, "http://127.0.0.1:1")))  # type: ignore[arg-type]
    for needed in (
        "clusterrole/jit-restart-checkout in payments",
        "INC-4712 checkout p99 latency",
        "system:serviceaccount:agents:oncall-agent",
        "10m after activation",
        'jitgrant approve restart-checkout-prod -n agents --reason "..."',
        'jitgrant deny restart-checkout-prod -n agents --reason "..."',
    ):
        assert needed in text, (kind, needed)


def test_slack_and_teams_bodies_have_their_webhook_shapes() -> None:
    slack = render(pending(), notifier("slack", "http://x"))  # type: ignore[arg-type]
    assert slack["text"].startswith("AccessRequest agents/restart-checkout-prod needs approval")
    assert [block["type"] for block in slack["blocks"]] == ["header", "section", "section"]
    teams = render(pending(), notifier("teams", "http://x"))  # type: ignore[arg-type]
    card = teams["attachments"][0]
    assert teams["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    ended = notice_for(
        REQUEST, phase=Phase.EXPIRED, reason="Expired", message="window closed", expires_at=EXPIRES
    )
    hook = render(ended, notifier("webhook", "http://x", command="kubectl jitgrant"))  # type: ignore[arg-type]
    assert hook["event"] == "expired" and hook["expires"] == "2026-12-01T05:00:00Z" and hook["commands"] == {}


def test_config_refuses_a_notifier_without_exactly_one_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="notifier x: set exactly one of url or urlFile"):
        NotifierConfig.model_validate({"name": "x", "type": "slack"})
    with pytest.raises(ValidationError, match="type"):
        NotifierConfig.model_validate({"name": "x", "type": "email", "url": "http://x"})
    secret = tmp_path / "url"
    secret.write_text("http://127.0.0.1:9/hook\n")
    config_file = tmp_path / "notify.yaml"
    config_file.write_text(
        f"notifiers:\n  - name: s\n    type: slack\n    urlFile: {secret}\n    events: [pending]\n"
    )
    [loaded] = NotifyConfig.from_file(config_file).notifiers
    assert loaded.resolve_url() == "http://127.0.0.1:9/hook" and [e.value for e in loaded.events] == [
        "pending"
    ]


def count(registry: CollectorRegistry, result: str, name: str) -> float:
    value = registry.get_sample_value(
        "jitgrant_notifications_total", {"notifier": name, "event": "pending", "result": result}
    )
    return value or 0.0


def test_notices_reach_a_local_receiver_and_only_for_the_chosen_events() -> None:
    registry = CollectorRegistry()
    with receiver() as got:
        sink = Notifier([notifier("webhook", got.url, events=["pending"])], registry=registry)
        try:
            sink.transition(REQUEST, phase=Phase.PENDING, reason="AwaitingApproval", message="waiting")
            sink.transition(REQUEST, phase=Phase.ACTIVE, reason="Activated", message="active")
            assert sink.flush()
        finally:
            sink.close()
    assert [body["event"] for body in got.bodies] == ["pending"]
    assert got.bodies[0]["commands"]["approve"].startswith("jitgrant approve restart-checkout-prod -n agents")
    assert count(registry, "sent", "webhook-test") == 1


def test_a_failing_or_stalled_receiver_never_slows_the_caller_and_is_counted() -> None:
    registry = CollectorRegistry()
    with receiver(status=500) as failing, receiver(delay=3.0) as stalled:
        sink = Notifier(
            [
                notifier("slack", failing.url),
                notifier("teams", stalled.url, timeoutSeconds=0.5),
                notifier("webhook", "http://127.0.0.1:9/nothing-listens"),
            ],
            registry=registry,
            queue_size=4,
        )
        try:
            started = time.perf_counter()
            for _ in range(5):  # more than the queue holds: the rest are dropped, not waited for
                sink.transition(REQUEST, phase=Phase.PENDING, reason="AwaitingApproval", message="waiting")
            elapsed = time.perf_counter() - started
            assert sink.flush(timeout=30)
        finally:
            sink.close()
    assert elapsed < 0.1, f"transition() took {elapsed:.3f}s"
    failed = sum(count(registry, "failed", name) for name in ("slack-test", "teams-test", "webhook-test"))
    dropped = sum(count(registry, "dropped", name) for name in ("slack-test", "teams-test", "webhook-test"))
    assert failed >= 3 and dropped >= 1
    assert failed + dropped == 15
    assert count(registry, "sent", "slack-test") == 0
