"""A bounded subset of `make chaos`: the operator SIGKILLed mid-expiry leaves nothing behind once it
is back, the grants end within the failover goal, and its audit trail verifies."""

from __future__ import annotations

from typing import Any

import run_chaos  # type: ignore[import-not-found]


def test_killed_at_expiry_nothing_is_left_and_grants_end_in_time(harness: tuple[Any, Any, Any, Any]) -> None:
    env, workdir, bench, watcher = harness
    out = run_chaos.run_fault(env, workdir, bench, watcher, "kill at expiry", 0)
    assert out.orphans == 0
    assert out.worst < 15.0, f"a grant ended {out.worst:.1f}s after its expiry"
    # The trail survives the kill: it verifies and holds no transition twice. `lost` is not asserted:
    # reconcile/driver.py records a transition after its status write, so a kill in between
    # loses it (a known bug, issue 16; `make chaos` shows it in the "lost records" column).
    assert out.chain_ok, out.problems
    assert out.duplicated == 0, out.problems
