"""architecture.md, "Replicas: election, fencing and the replay set", with real processes: the leader
SIGSTOPped mid-burst past its Lease, the standby
taking over, the old leader SIGCONTed. Every grant's transitions are recorded once across both
replicas' trails, or repeated under one transitionId that `jitgrant audit query` folds; the resumed
leader writes nothing. Before the fix the repeats carried nothing to tell them from a second grant."""

from __future__ import annotations

from typing import Any

import run_chaos  # type: ignore[import-not-found]


def test_a_paused_leader_resumed_records_nothing_and_every_grant_is_granted_once(
    harness: tuple[Any, Any, Any, Any],
) -> None:
    env, workdir, bench, watcher = harness
    out = run_chaos.run_fault(env, workdir, bench, watcher, "leader pause", 0)
    assert out.orphans == 0
    assert out.chain_ok, out.problems
    assert out.lost == 0 and out.duplicated == 0, out.problems
    assert not out.problems, out.problems
