"""The wire form of a dry run's answer: one codec, written by the webhook, read by the client.

A dryRun create of an AccessRequest is answered in admission: a refusal when it would be denied, two
warnings when it would be filed (allowed, or pending approval). People read the first line of each
(`kubectl create --dry-run=server` prints them); programs read `DryRunWire`, which the warnings carry
as JSON after `jitgrant.dev/dry-run-answer: `, so no client parses the prose. A refusal is one line
whose reason is a `Reason` token: `jitgrant.dev/dry-run: <Reason>: <message>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final, Literal

from jitgrant.models.vocabulary import DRY_RUN_WARNING

DRY_RUN_ANSWER: Final = f"{DRY_RUN_WARNING}-answer"
Outcome = Literal["allowed", "pending-approval", "denied"]
_OUTCOMES: Final = ("allowed", "pending-approval", "denied")


@dataclass(frozen=True)
class DryRunWire:
    """What a dry run would do, as the client reports it (CheckResult is built from this)."""

    outcome: Outcome
    reason: str
    message: str
    duration: str | None = None
    approvals_needed: int = 0
    approvers: str | None = None


def encode_warnings(answer: DryRunWire) -> list[str]:
    """The admission warnings of an allowed or pending dry run: the line people read, then the data."""
    data = json.dumps(asdict(answer), separators=(",", ":"), sort_keys=True)
    return [f"{DRY_RUN_WARNING}: {answer.reason}: {answer.message}", f"{DRY_RUN_ANSWER}: {data}"]


def encode_refusal(reason: str, message: str) -> str:
    """The admission refusal of a denied dry run (the API server prefixes the webhook's name)."""
    return f"{DRY_RUN_WARNING}: {reason}: {message}"


def decode_warnings(warnings: Iterable[str]) -> DryRunWire | None:
    """The answer the warnings carry; None when no warning is the webhook's (an old operator)."""
    marker = f"{DRY_RUN_ANSWER}: "
    for warning in warnings:
        if not warning.startswith(marker):
            continue
        try:
            data = json.loads(warning[len(marker) :])
            outcome = data["outcome"]
            if outcome not in _OUTCOMES:
                return None
            return DryRunWire(
                outcome=outcome,
                reason=str(data["reason"]),
                message=str(data["message"]),
                duration=None if data.get("duration") is None else str(data["duration"]),
                approvals_needed=int(data.get("approvals_needed") or 0),
                approvers=None if data.get("approvers") is None else str(data["approvers"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
    return None


def decode_refusal(text: str) -> DryRunWire | None:
    """A denied dry run from the API server's refusal message (it quotes the webhook's); None when
    the refusal is not a dry run's answer (RBAC, a missing namespace, another webhook)."""
    marker = f"{DRY_RUN_WARNING}: "
    start = text.find(marker)
    if start < 0:
        return None
    reason, separator, message = text[start + len(marker) :].partition(": ")
    if not separator or not reason.isidentifier():
        return None
    return DryRunWire(outcome="denied", reason=reason, message=message.strip())
