"""A bounded subset of `make chaos`'s injected faults: with the operator's watches dropped every 2 s,
with its audit sink down then back, and with it answering slowly, nothing is left behind, nothing is
lost from the trail, no grant is issued unrecorded, and every grant ends in time. (The hanging target
and clock skew faults take 1-2 minutes a run: `make chaos` only.)"""

from __future__ import annotations

from typing import Any

import pytest
import run_chaos  # type: ignore[import-not-found]


@pytest.mark.parametrize("fault", ["dropped watches", "dead audit sink"])
def test_nothing_is_lost_or_left(harness: tuple[Any, Any, Any, Any], fault: str) -> None:
    env, workdir, bench, watcher = harness
    out = run_chaos.run_fault(env, workdir, bench, watcher, fault, 0)
    assert out.injected > 0  # watches were cut; requests were filed while the sink was down
    assert out.orphans == 0
    assert out.chain_ok
    assert (out.lost, out.duplicated) == (0, 0), out.problems
    assert not out.problems  # every request ended as intended, within the bound, none granted unrecorded
    assert out.worst < run_chaos.END_BOUND_S


def test_a_slow_audit_sink_loses_nothing_and_holds_up_no_end(harness: tuple[Any, Any, Any, Any]) -> None:
    """Each delivery answered after 1-3 s: every record reaches the sink and the file, once, and the
    grants that were issued end in time (expiry and revocation records do not wait for the sink)."""
    env, workdir, bench, watcher = harness
    out = run_chaos.run_fault(env, workdir, bench, watcher, "slow audit sink", 0)
    assert out.injected > 0  # slow deliveries happened
    assert out.orphans == 0
    assert out.chain_ok
    assert (out.lost, out.duplicated) == (0, 0), out.problems
    assert out.worst < run_chaos.END_BOUND_S
    # An intent to grant waits behind the deliveries queued before it; past acceptanceTimeoutSeconds
    # (5 s) its request fails closed (AuditUnavailable), as designed. That happened to 8 of 10 in a
    # first run, while the reconciler and scheduler were being changed (13110f8 and around), and to
    # none of 20 in the two runs of the full suite after (nor in a pytest run). Nothing else may go wrong.
    unexpected = [p for p in out.problems if "Failed (AuditUnavailable" not in p]
    assert not unexpected, unexpected
