"""wait() follows a watch and resumes it: when the API server ends the watch, and when the history it
would resume from is gone (410 Gone after a compaction), no change is missed and nothing polls."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import jitgrant.client._api as api
from jitgrant.client import Client
from jitgrant_testing.agents import NS, REASON, Agents


def test_wait_resumes_after_the_server_ends_the_watch_and_after_410_gone(
    agents: Agents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "WATCH_SECONDS", 1)  # the server ends every watch after a second
    reads: list[str] = []
    real_call = api.Connection.call

    async def recording(self: api.Connection, method: str, path: str, **kwargs: Any) -> api.ApiResponse:
        reads.append(f"{method} {path}")
        return await real_call(self, method, path, **kwargs)

    monkeypatch.setattr(api.Connection, "call", recording)
    env = agents.env
    alice = env.client_for_user("alice", groups=("sre-oncall",))
    with Client.from_kubeconfig(agents.kubeconfig()) as client:
        filed = client.request(
            policy="prod-restart",
            namespace="payments",
            cluster_role="jit-restart-checkout",
            duration="10m",
            reason=REASON,
        )
        name = filed.metadata.name

        def meanwhile() -> None:
            env.wait_for_phase(NS, name, "Pending")
            time.sleep(2.5)  # several watches ended and resumed
            env.cluster.compact()  # the next resume's resourceVersion is too old: 410 Gone
            time.sleep(1.5)
            env.annotate_request(NS, name, {"jitgrant.dev/approve": "ok"}, client=alice)

        thread = threading.Thread(target=meanwhile)
        thread.start()
        before = client.api_calls
        started = time.monotonic()
        grant = client.wait(name, timeout="30s")
        elapsed = time.monotonic() - started
        thread.join()
        calls = client.api_calls - before
        client.release(name)
    assert grant.request.status.phase is not None and grant.request.status.phase.value == "Active"
    # One read, one policy read, about one watch per second, one re-read after the 410: a poll every
    # 0.5 s would have made twice as many calls as seconds waited.
    assert calls <= elapsed + 5, (calls, elapsed)
    # The request itself was read twice: before the first watch, and again after the 410.
    assert reads.count(f"GET {api.request_path(NS, name)}") == 2, reads
