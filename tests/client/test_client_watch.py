"""wait() follows a watch and resumes it: when the API server ends the watch, and when the history it
would resume from is gone (410 Gone after a compaction), no change is missed and nothing polls."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.client import CoreV1Api

import jitgrant.client._api as api
from jitgrant.client import Client
from jitgrant.client.paths import request_path
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
            justification=REASON,
        )
        name = filed.metadata.name

        def meanwhile() -> None:
            env.wait_for_phase(NS, name, "Pending")
            time.sleep(2.5)  # several watches ended and resumed
            # Another object's write, so the compaction passes the request's own (unchanged)
            # version: resuming from the object's version would then be 410 again, in a loop.
            CoreV1Api(env.admin).create_namespaced_config_map(NS, {"metadata": {"name": "unrelated"}})
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
    assert reads.count(f"GET {request_path(NS, name)}") == 2, reads


class CuttableProxy:
    """A TCP proxy in front of the API server whose open connections the test can cut, as a load
    balancer or a network blip would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.closed = False
        self._start(self._accept)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [downstream, upstream]
            self._start(self._pump, downstream, upstream)
            self._start(self._pump, upstream, downstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> int:
        with self.lock:
            cut, self.sockets = self.sockets, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(cut) // 2

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut()
        for thread in self.threads:
            thread.join(timeout=5)


def test_wait_reconnects_when_the_connection_drops(agents: Agents, tmp_path: Path) -> None:
    env = agents.env
    host, port = urlsplit(env.cluster.url).hostname or "", urlsplit(env.cluster.url).port or 0
    proxy = CuttableProxy(host, port)
    try:
        config = env.cluster.kubeconfig(token=agents.token(), namespace=NS)
        config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{proxy.port}"
        kubeconfig = tmp_path / "through-proxy.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        kubeconfig.chmod(0o600)
        alice = env.client_for_user("alice", groups=("sre-oncall",))
        watches: list[float] = []
        real_watch = api.Connection.watch

        def counting(self: api.Connection, path: str, params: Any) -> Any:
            watches.append(time.monotonic())
            return real_watch(self, path, params)

        with pytest.MonkeyPatch.context() as patch, Client.from_kubeconfig(kubeconfig) as client:
            patch.setattr(api.Connection, "watch", counting)
            filed = client.request(
                policy="prod-restart",
                namespace="payments",
                cluster_role="jit-restart-checkout",
                justification=REASON,
            )
            name = filed.metadata.name
            cuts: list[int] = []

            def meanwhile() -> None:
                env.wait_for_phase(NS, name, "Pending")
                time.sleep(1.0)
                cuts.append(proxy.cut())  # the watch connection drops mid-stream
                time.sleep(1.0)
                env.annotate_request(NS, name, {"jitgrant.dev/approve": "ok"}, client=alice)

            thread = threading.Thread(target=meanwhile)
            thread.start()
            grant = client.wait(name, timeout="30s")
            thread.join()
            client.release(name)
        assert cuts and cuts[0] >= 1, cuts
        assert grant.request.status.phase is not None and grant.request.status.phase.value == "Active"
        assert len(watches) >= 2, watches  # it watched again after the drop, from where it was
    finally:
        proxy.close()
