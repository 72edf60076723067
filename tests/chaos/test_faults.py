"""A bounded subset of `make chaos`'s injected faults: with the operator's watches dropped every 2 s,
and with its audit sink down then back, nothing is left behind, nothing is lost from the trail, no
grant is issued unrecorded, and every grant ends in time."""

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
