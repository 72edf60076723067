"""A TCP proxy in front of a target cluster's API server that can make the cluster go dark.

While `dark`, a new connection is accepted by the kernel and then never answered (what a cluster
behind a dead network path, or a hung server, looks like: `make chaos`'s hanging target), and the
connections open when it went dark are left hanging too. While light it forwards bytes both ways;
TLS passes through, so the client still verifies the cluster's own certificate.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class DarkableProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._dark = False
        self._closed = False
        self._open: list[socket.socket] = []  # every socket accepted or opened, closed at close()
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def dark(self) -> bool:
        return self._dark

    @dark.setter
    def dark(self, value: bool) -> None:
        with self._lock:
            self._dark = value

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(downstream)
                if self._dark:
                    continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                continue
            with self._lock:
                self._open.append(upstream)
            self._start(self._pump, downstream, upstream)
            self._start(self._pump, upstream, downstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self._dark and not self._closed:
                    # Gone dark mid-connection: hold the bytes, as a dead path would.
                    threading.Event().wait(0.05)
                if self._closed:
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
