"""Issue 20 §3: the sentences the operator composes around others' text (a release or revoke reason
in the status message, Event and audit reason; a justification quoted back in a refusal) hold that
text on one line, hidden characters shown as escapes: kubectl prints these raw in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hostile_text import ACTING, HOSTILE
from jitgrant.approvals.release import release_message
from jitgrant.identity.stamp import revocation_message
from jitgrant.lifecycle.transitions import next_step
from jitgrant.models import AccessRequest, RequesterStamp
from jitgrant.models.text import visible
from policy.builders import check, policy, request

CASES = sorted(HOSTILE)
REQUESTER = RequesterStamp(username="system:serviceaccount:agents:bot")


def one_clean_line(message: str) -> None:
    assert "\n" not in message
    for char in ACTING:
        assert char not in message, (hex(ord(char)), message)


@pytest.mark.parametrize("case", CASES)
def test_a_release_message_holds_the_reason_on_one_line(case: str) -> None:
    message = release_message(REQUESTER, HOSTILE[case])
    one_clean_line(message)
    assert message == f"Released by requester {REQUESTER.username}: {visible(HOSTILE[case].strip())}"


@pytest.mark.parametrize("case", CASES)
def test_a_revocation_message_holds_the_reason_on_one_line(case: str) -> None:
    one_clean_line(revocation_message(key=b"k" * 32, uid="u1", stamp=None, reason=HOSTILE[case]))


@pytest.mark.parametrize("case", CASES)
def test_the_revoke_step_of_the_lifecycle_carries_the_reason_on_one_line(case: str) -> None:
    body = {
        "metadata": {
            "name": "x",
            "namespace": "agents",
            "annotations": {"jitgrant.dev/revoke": HOSTILE[case]},
        },
        "spec": {
            "policy": "p",
            "namespace": "payments",
            "clusterRole": "r",
            "requester": REQUESTER.model_dump(),
        },
        "status": {"phase": "Active"},
    }
    step = next_step(
        request=AccessRequest.model_validate(body), policy=None, now=datetime.now(UTC), seal_valid=True,
        tally=None, inline_rules_enabled=False, operator_namespace="jitgrant-system",
    )  # fmt: skip
    one_clean_line(step.message)


@pytest.mark.parametrize("case", CASES)
def test_a_refused_justification_is_quoted_back_on_one_line(case: str) -> None:
    ticket = {"required": True, "pattern": "^(INC|CHG)-[0-9]+$"}
    decision = check(policy(justification=ticket), request(justification=HOSTILE[case]))
    [reason] = decision.reasons
    assert reason.startswith("justification '")
    one_clean_line(reason)
