"""Client: the blocking face of AsyncClient, for scripts and agents that are not asyncio programs.

Each Client runs its calls on its own event loop (asyncio.Runner) in the calling thread, so Ctrl-C
cancels a wait at once. Inside a running event loop, use AsyncClient instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from jitgrant.activity.base import AuditSource
from jitgrant.activity.report import Activity
from jitgrant.client._async import AsyncClient, DurationLike, ProgressCallback, _seconds, withdrawn_on_exit
from jitgrant.client.errors import AccessTimedOut
from jitgrant.client.results import CheckResult, Grant, Grantable, Identity
from jitgrant.models import AccessRequest

T = TypeVar("T")


class Client:
    """`Client.from_kubeconfig()` or `Client.in_cluster()`; every method blocks until it is done."""

    def __init__(self, inner: AsyncClient) -> None:
        self.aio = inner
        self._runner = asyncio.Runner()

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path | None = None, *, context: str | None = None, namespace: str | None = None
    ) -> Client:
        return cls(AsyncClient.from_kubeconfig(path, context=context, namespace=namespace))

    @classmethod
    def in_cluster(cls, *, namespace: str | None = None) -> Client:
        return cls(AsyncClient.in_cluster(namespace=namespace))

    @classmethod
    def from_configuration(cls, configuration: Any, *, namespace: str = "default") -> Client:
        return cls(AsyncClient.from_configuration(configuration, namespace=namespace))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    @property
    def namespace(self) -> str:
        return self.aio.namespace

    @property
    def api_calls(self) -> int:
        return self.aio.api_calls

    def close(self) -> None:
        try:
            self._run(self.aio.close())
        finally:
            self._runner.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def whoami(self) -> Identity:
        return self._run(self.aio.whoami())

    def request(self, **kwargs: Any) -> AccessRequest:
        return self._run(self.aio.request(**kwargs))

    def check(self, **kwargs: Any) -> CheckResult:
        return self._run(self.aio.check(**kwargs))

    def status(self, name: str, *, namespace: str | None = None) -> AccessRequest:
        return self._run(self.aio.status(name, namespace=namespace))

    def my_requests(self, *, namespace: str | None = None) -> list[AccessRequest]:
        return self._run(self.aio.my_requests(namespace=namespace))

    def grantable(self) -> list[Grantable]:
        return self._run(self.aio.grantable())

    def wait(
        self,
        name: str,
        *,
        namespace: str | None = None,
        timeout: DurationLike = "30m",
        on_progress: ProgressCallback | None = None,
        deliver: bool = True,
    ) -> Grant:
        grant = self._run(
            self.aio.wait(
                name, namespace=namespace, timeout=timeout, on_progress=on_progress, deliver=deliver
            )
        )
        grant._extender = self.extend  # blocking, as this client's calls are
        return grant

    def kubeconfig(self, request: AccessRequest) -> str | None:
        return self._run(self.aio.kubeconfig(request))

    def activity(self, name: str, *, source: AuditSource, namespace: str | None = None) -> Activity:
        return self._run(self.aio.activity(name, source=source, namespace=namespace))

    def release(
        self, name: str, *, namespace: str | None = None, reason: str = "", confirm: bool = True
    ) -> AccessRequest:
        return self._run(self.aio.release(name, namespace=namespace, reason=reason, confirm=confirm))

    def extend(
        self,
        name: str,
        *,
        by: str | timedelta,
        justification: str,
        namespace: str | None = None,
        request_key: str | None = None,
        timeout: DurationLike = "30m",
        wait: bool = True,
    ) -> AccessRequest:
        return self._run(
            self.aio.extend(
                name,
                by=by,
                justification=justification,
                namespace=namespace,
                request_key=request_key,
                timeout=timeout,
                wait=wait,
            )
        )

    def check_extension(
        self, name: str, *, by: str | timedelta, justification: str, namespace: str | None = None
    ) -> CheckResult:
        return self._run(
            self.aio.check_extension(name, by=by, justification=justification, namespace=namespace)
        )

    @contextlib.contextmanager
    def grant(
        self, *, timeout: DurationLike = "30m", on_progress: ProgressCallback | None = None, **kwargs: Any
    ) -> Iterator[Grant]:
        """File, wait until active, yield the grant, release it on exit (also on exceptions)."""
        _seconds(timeout)  # a bad timeout is refused before anything is filed
        request = self.request(**kwargs)
        name, namespace = request.metadata.name, request.metadata.namespace
        try:
            try:
                granted = self.wait(name, namespace=namespace, timeout=timeout, on_progress=on_progress)
            except AccessTimedOut as exc:
                raise withdrawn_on_exit(exc) from None
            yield granted
        finally:
            self.release(name, namespace=namespace, reason="released on exit")
