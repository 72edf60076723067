"""The leader's clock corrected to the API server's, from the `Date` headers of its Lease reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from jitgrant.servertime import ServerClock

T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def _reads(clock: ServerClock, *, skew: float, count: int, rtt: float = 0.004, step: float = 1.013) -> None:
    """`count` reads by a replica whose clock is `skew` seconds ahead of the server's."""
    for index in range(count):
        true_sent = T0 + timedelta(seconds=index * step)
        true_answer = true_sent + timedelta(seconds=rtt / 2)
        date = format_datetime(true_answer.replace(microsecond=0), usegmt=True)
        local = timedelta(seconds=skew)
        clock.sample(true_sent + local, true_sent + timedelta(seconds=rtt) + local, date)


@given(skew=st.floats(min_value=-120, max_value=120))
def test_the_offset_is_found_to_within_a_round_trip_whatever_the_skew(skew: float) -> None:
    clock = ServerClock(lambda: T0, tolerance=0.5)
    _reads(clock, skew=skew, count=30, step=1.037)  # reads at every phase of the server's second
    low, high = clock.interval()
    assert low <= -skew <= high and high - low < 0.05
    if abs(skew) > 0.55:
        assert abs(clock.offset + skew) < 0.05
        assert abs((clock() - T0).total_seconds() + skew) < 0.05
    elif abs(skew) < 0.45:
        assert clock.offset == 0.0 and clock() == T0  # NTP is working: nothing is corrected


def test_a_30s_fast_replica_reads_the_servers_time() -> None:
    """The make chaos case: a leader 30 s fast ended grants 30 s early; corrected, it ends them on time."""
    local = T0 + timedelta(seconds=30)
    clock = ServerClock(lambda: local)
    _reads(clock, skew=30.0, count=10)
    # Ten reads a second apart: the Date header's whole seconds leave half a second of doubt.
    assert abs((clock() - T0).total_seconds()) <= 0.5


def test_a_stepped_clock_is_measured_again_from_the_newest_read() -> None:
    clock = ServerClock(lambda: T0)
    _reads(clock, skew=10.0, count=10)
    assert abs(clock.offset + 10) <= 0.5
    _reads(clock, skew=-5.0, count=1)  # NTP stepped the clock: old bounds no longer hold
    assert abs(clock.offset - 5) < 1.0


def test_answers_without_a_usable_date_change_nothing() -> None:
    clock = ServerClock(lambda: T0)
    for header in (None, "", "yesterday", "Tue, 01 Dec 2026 09:00:00"):  # the last has no zone
        clock.sample(T0, T0, header)
    assert clock.offset == 0.0 and clock() == T0
