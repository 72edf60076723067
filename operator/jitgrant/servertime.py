"""This replica's wall clock, corrected to the API server's.

Grants end at an absolute `expiresAt`, read by the leader's wall clock: a leader whose node clock is
30 s fast ended every grant 30 s early, one 30 s slow left access 30 s past its window (make chaos,
clock skew). Leader election itself only compares monotonic time and does not notice. So the leader
measures its offset from the API server, the cluster's common reference, on every Lease read: the
HTTP `Date` header (whole seconds) says the server's time was in [date, date + 1 s) at some moment
between sending the request and reading the answer, which bounds the offset. Intersecting those
bounds over recent reads narrows them to about a round trip. An offset beyond `tolerance` is added
to the local clock; within it (NTP working) the local clock is used as it is.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

log = logging.getLogger("jitgrant.servertime")


class ServerClock:
    def __init__(self, local: Callable[[], datetime], *, tolerance: float = 0.5, window: int = 60) -> None:
        self.local = local
        self.tolerance = tolerance
        self._bounds: deque[tuple[float, float]] = deque(maxlen=window)
        self._applied = 0.0
        self._warned = False

    def sample(self, sent: datetime, received: datetime, date_header: str | None) -> None:
        """One answer from the API server: `sent` and `received` by `self.local`, and its `Date`."""
        if not date_header:
            return
        try:
            server = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            return
        lower = (server - received).total_seconds()
        upper = (server - sent).total_seconds() + 1.0
        self._bounds.append((lower, upper))
        low, high = self.interval()
        if low > high:  # the local clock was stepped meanwhile: only the newest read still holds
            self._bounds.clear()
            self._bounds.append((lower, upper))
            low, high = lower, upper
        offset = (low + high) / 2
        applied = offset if abs(offset) > self.tolerance else 0.0
        if applied and not self._warned:
            log.warning(
                "this replica's clock is %.1fs %s the API server's; times are corrected by that much",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
            )
            self._warned = True
        self._applied = applied

    def interval(self) -> tuple[float, float]:
        """(lowest, highest) offset of the server's clock from the local one, in seconds."""
        return max(low for low, _ in self._bounds), min(high for _, high in self._bounds)

    @property
    def offset(self) -> float:
        """Seconds added to the local clock (0 within the tolerance, or before any answer)."""
        return self._applied

    def __call__(self) -> datetime:
        return self.local() + timedelta(seconds=self._applied)
