"""A replica whose take-over fails keeps electing (issue 23, found by make e2e).

On a fresh install the API server answers 429 ("storage is (re)initializing") for a moment after the
CRDs are created. The new leader's start (its first sweep) failed on that, the exception ended the
election loop, the loop's clean-up released the Lease, the other replica took it and failed the same
way: two Ready replicas and no leader, for good. Now a failed start gives the Lease up and the loop
goes on, so a later attempt leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from jitgrant.clusters.leader import LeaderElection
from jitgrant_testing.environment import OPERATOR_NAMESPACE, Environment


async def test_a_failed_take_over_gives_the_lease_up_and_tries_again() -> None:
    with Environment() as env:
        env.operator.stop()
        election = LeaderElection(
            env._client(), namespace=OPERATOR_NAMESPACE, identity="replica-a", lease_seconds=3.0,
            renew_every=0.2, margin=0.5,
        )  # fmt: skip
        calls: list[str] = []

        async def started() -> None:
            calls.append("start")
            if calls.count("start") == 1:
                raise RuntimeError("storage is (re)initializing")

        async def stopped() -> None:
            calls.append("stop")

        task = asyncio.create_task(election.run(on_started=started, on_stopped=stopped))
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (calls.count("start") == 2 and election.holds()):
                if task.done():
                    break
                await asyncio.sleep(0.1)
            assert not task.done(), f"the election loop ended: {task.exception()!r}"
            assert calls[:3] == ["start", "stop", "start"], calls
            assert election.holds()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            election.close()
