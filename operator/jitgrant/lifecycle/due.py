"""When an AccessRequest next needs the reconciler, from what its watch event already carries.

The operator's scheduler asks this for every event and keeps one priority queue of due times, so a
live grant costs nothing until its `expiresAt` (no per-object timer, no API call while waiting).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jitgrant.lifecycle.retention import KEEP_FOREVER, Disposal, removal
from jitgrant.models.request import TERMINAL_PHASES, Phase
from jitgrant.models.vocabulary import RELEASE_ANNOTATION, REVOKE_ANNOTATION, parse_time

_TERMINAL = frozenset(phase.value for phase in TERMINAL_PHASES)


def due(
    status: Mapping[str, Any],
    annotations: Mapping[str, str],
    now: datetime,
    *,
    retention: timedelta = KEEP_FOREVER,
) -> datetime | None:
    """The time the request must next be reconciled; `now` if at once; None if never again.

    Only an Active grant can wait without the reconciler: until `expiresAt`, or not at all when it
    is revoked or released. Anything not yet decided is reconciled now, and the reconciler says
    itself when it must look again (a pending time-out, a retry). An ended request is due once its
    `retention` has passed (lifecycle/retention.py), never when finished requests are kept forever.
    """
    phase = status.get("phase")
    if phase in _TERMINAL:
        after = removal(status, retention=retention, now=now)
        if after.disposal is Disposal.NONE:
            return None
        return after.remove_at or now  # no endedAt yet (STAMP): now, to record one
    if phase != Phase.ACTIVE.value:
        return now
    if REVOKE_ANNOTATION in annotations or RELEASE_ANNOTATION in annotations:
        return now
    expires = status.get("expiresAt")
    if not isinstance(expires, str):
        return now  # Active without a readable end: let the reconciler decide (it expires it)
    try:
        return parse_time(expires)
    except ValueError:
        return now
