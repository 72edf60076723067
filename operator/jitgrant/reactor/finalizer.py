"""The finalizer `jitgrant.dev/revoke-grant`, kept by the leader alone instead of by kopf.

kopf adds its finalizer from every replica that sees an object needing one (a handler that requires
it, such as `on.delete`), before any handler runs, and writes its progress and diff-base annotations
from every replica too: a standby, which must not write at all, wrote to AccessRequests. So no kopf
handler on AccessRequests needs a finalizer (kopf's own is a name no object carries), and the replica
holding the Lease does the finalizer's work here: it adds the finalizer before a request can be
granted and, once the request is being deleted, revokes its access and then releases it. A request
that finished (its grant ended) gives the finalizer back at once: nothing is left to revoke, and
without an operator (after `helm uninstall`) it would keep the request's namespace Terminating.
"""

from __future__ import annotations

import asyncio
import logging

from jitgrant.clusters.errors import Conflict, NotFound
from jitgrant.clusters.port import StoredRequest
from jitgrant.models.vocabulary import FINALIZER
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.driver import Reconciler
from jitgrant.reconcile.result import RETRY_LADDER

log = logging.getLogger("jitgrant.finalizer")


async def ensure(runtime: Runtime, namespace: str, name: str) -> None:
    """The finalizer on a request that is not being deleted (a no-op when it has it)."""
    for _ in range(3):
        stored = await runtime.own.get_request(namespace, name)
        if stored is None or stored.deleting or FINALIZER in stored.finalizers:
            return
        try:
            await runtime.own.update_finalizers(
                namespace, name, [*stored.finalizers, FINALIZER], resource_version=stored.resource_version
            )
            return
        except Conflict:
            continue  # changed since read: read again
        except NotFound:
            return


def needs_finalizer(stored: StoredRequest) -> bool:
    # A finished request has nothing left to revoke: no write for it (at start-up these writes
    # reach our own webhooks, which may not be listening yet).
    finished = stored.phase is not None and stored.phase.terminal
    return not stored.deleting and not finished and FINALIZER not in stored.finalizers


def releasable(stored: StoredRequest) -> bool:
    """A finished request still holding the finalizer: its grant has ended, nothing is left to revoke,
    and the finalizer would only block deleting it (and its namespace) once no operator runs, as
    after `helm uninstall` (issue 23)."""
    finished = stored.phase is not None and stored.phase.terminal
    return finished and not stored.deleting and FINALIZER in stored.finalizers


async def release_finished(runtime: Runtime, namespace: str, name: str) -> None:
    """Drop the finalizer of a finished request (a no-op when it is not `releasable`)."""
    for _ in range(3):
        stored = await runtime.own.get_request(namespace, name)
        if stored is None or not releasable(stored):
            return
        remaining = [f for f in stored.finalizers if f != FINALIZER]
        try:
            await runtime.own.update_finalizers(
                namespace, name, remaining, resource_version=stored.resource_version
            )
            return
        except Conflict:
            continue  # changed since read: read again
        except NotFound:
            return


async def finalize(runtime: Runtime, namespace: str, name: str) -> bool:
    """A deleted request: revoke its access, then release the finalizer. True when nothing is left
    to do; raises (and keeps the finalizer) when the revocation failed."""
    while True:
        stored = await runtime.own.get_request(namespace, name)
        if stored is None or not stored.deleting or FINALIZER not in stored.finalizers:
            return True
        await Reconciler(runtime).revoke_for_deletion(stored.body)
        remaining = [f for f in stored.finalizers if f != FINALIZER]
        try:
            await runtime.own.update_finalizers(
                namespace, name, remaining, resource_version=stored.resource_version
            )
            return True
        except Conflict:
            continue  # changed meanwhile (another finalizer went): revoke is idempotent, go again
        except NotFound:
            return True


class Finalizers:
    """One task per deleted request that the leader is finalizing, retried until it is done."""

    def __init__(self, runtime: Runtime, *, retry_delays: tuple[float, ...] = RETRY_LADDER) -> None:
        self.runtime = runtime
        self._delays = retry_delays
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def start(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in self._tasks:
            return
        task = asyncio.create_task(self._run(namespace, name), name=f"jitgrant-finalize-{namespace}/{name}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def _run(self, namespace: str, name: str) -> None:
        attempt = 0
        while not self.runtime.stopping:
            try:
                if await finalize(self.runtime, namespace, name):
                    return
            except Exception as exc:
                self.runtime.metrics.reconcile_error(handler="revoke-on-delete")
                log.warning("revoking %s/%s before its deletion failed: %s; retrying", namespace, name, exc)
            await asyncio.sleep(self._delays[min(attempt, len(self._delays) - 1)])
            attempt += 1

    async def stop(self) -> None:
        """Stop every finalization (this replica stopped leading): the next leader takes them up."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
