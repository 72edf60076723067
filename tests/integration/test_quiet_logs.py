"""Issue 24 §7: a webhook refusal is a policy outcome, logged at INFO; ERROR is left for faults.

kopf logs every refusal as "Webhook ... failed permanently" at ERROR (11 such lines in ten minutes of
trying the playground, all of them refusals). Here a dry run the policy denies and an approval by
someone who is not an approver go through the real webhooks of the embedded cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jitgrant.client import Client
from jitgrant_testing.agents import REASON, start_environment


def test_refusals_are_logged_at_info_not_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="kopf")  # the demo quiets kopf process-wide; not here
    for agents in start_environment(tmp_path):
        with Client.from_kubeconfig(agents.kubeconfig()) as client:
            answer = client.check(
                policy="oncall-restart",
                namespace="payments",
                cluster_role="jit-restart-checkout",
                justification=REASON,
                duration="2h",
            )
        assert answer.outcome == "denied"
    refusals = [r for r in caplog.records if r.name.startswith("kopf") and "failed permanently" in r.message]
    assert refusals, [r.message for r in caplog.records if r.name.startswith("kopf")][-20:]
    assert {r.levelname for r in refusals} == {"INFO"}, [(r.levelname, r.message) for r in refusals]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        (r.name, r.message) for r in caplog.records if r.levelno >= logging.ERROR
    ]
