"""A grant's activity in numbers, for the audit trail: what a reviewer asks first. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from jitgrant.activity.attribution import AttributedCall, Basis, Outcome


@dataclass(frozen=True)
class ActivitySummary:
    calls: int = 0
    allowed_by_grant: int = 0
    allowed_otherwise: int = 0  # by another binding, or by what the log does not say
    refused: int = 0
    exact: int = 0  # tied to the grant by the authorization reason rather than identity and window
    by_verb: Mapping[str, int] = field(default_factory=dict)
    by_resource: Mapping[str, int] = field(default_factory=dict)
    refused_by_resource: Mapping[str, int] = field(default_factory=dict)
    first_call: datetime | None = None
    last_call: datetime | None = None


def summarize(calls: Iterable[AttributedCall]) -> ActivitySummary:
    items = sorted(calls, key=lambda item: item.call.time)
    outcomes = Counter(item.outcome for item in items)
    refused = [item for item in items if item.outcome is Outcome.REFUSED]
    return ActivitySummary(
        calls=len(items),
        allowed_by_grant=outcomes[Outcome.THIS_GRANT],
        allowed_otherwise=outcomes[Outcome.OTHER] + outcomes[Outcome.UNKNOWN],
        refused=len(refused),
        exact=sum(item.basis is Basis.AUTHORIZATION_REASON for item in items),
        by_verb=dict(sorted(Counter(item.call.verb for item in items).items())),
        by_resource=dict(sorted(Counter(item.call.target for item in items).items())),
        refused_by_resource=dict(sorted(Counter(f"{i.call.verb} {i.call.target}" for i in refused).items())),
        first_call=items[0].call.time if items else None,
        last_call=items[-1].call.time if items else None,
    )
