"""A call to the operator's own cluster that gets no answer ends with its read timeout, never hangs.

The official client waits forever by default, so a pass whose call went out on a connection that no
longer leads anywhere (an API server crash, a NAT entry gone) would hold its grant, and its lock,
until the process restarted (found while chasing issue 23's late grants, which had another cause).
Here the API server is a socket that accepts and reads but never answers, as such a connection does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.operator.runner import OWN_REQUEST_TIMEOUT, build_runtime
from jitgrant.settings import OperatorSettings


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP address that accepts connections, reads requests and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)  # kept open, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def _kubeconfig(server: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


def test_the_own_cluster_has_a_timeout_by_default(tmp_path: Path, silent_server: str) -> None:
    runtime = build_runtime(OperatorSettings(), kubeconfig=_kubeconfig(silent_server), state_dir=tmp_path)
    try:
        assert runtime.own_api is not None
        assert runtime.own_api.request_timeout == OWN_REQUEST_TIMEOUT
        connect, read = OWN_REQUEST_TIMEOUT
        assert connect > 0 and 0 < read <= 30  # a hung pass ends within seconds, not never
    finally:
        runtime.close()


def test_a_call_that_is_never_answered_fails_after_the_read_timeout(
    tmp_path: Path, silent_server: str
) -> None:
    runtime = build_runtime(
        OperatorSettings(),
        kubeconfig=_kubeconfig(silent_server),
        state_dir=tmp_path,
        own_request_timeout=(1.0, 1.0),
    )

    async def call() -> float:
        start = time.monotonic()
        with pytest.raises(ClusterAccessError):
            # The bound here only keeps a regression from hanging the suite: without the timeout
            # the call never returns and this wait_for fails the test.
            await asyncio.wait_for(runtime.own.get_request("agents", "r"), 30)
        return time.monotonic() - start

    try:
        took = asyncio.run(call())
    finally:
        runtime.close()
    # The client's own retries (3) of a read that timed out: a few seconds, not the 30 s bound.
    assert took < 15, f"took {took:.1f}s"
