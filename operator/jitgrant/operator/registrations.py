"""kopf registrations. Handlers stay thin: they find the Runtime and hand over to the Reconciler."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import kopf

from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import StoredRequest
from jitgrant.clusters.replay import SharedReplayCache
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.vocabulary import FINALIZER
from jitgrant.operator import admission as _admission  # noqa: F401 - registers the webhooks
from jitgrant.operator import policy_admission as _policy_admission  # noqa: F401 - GrantPolicy webhook
from jitgrant.operator import policy_status as _policy_status  # noqa: F401 - GrantPolicy Ready condition
from jitgrant.reactor import finalizer
from jitgrant.reactor.fencing import LeaderElection
from jitgrant.reactor.runtime import Runtime
from jitgrant.reactor.scheduler import Scheduler
from jitgrant.reactor.sweep import sweep_cluster, sweep_forever
from jitgrant.reconcile.result import RETRY_LADDER
from jitgrant.servertime import ServerClock

PROGRESS_PREFIX = "jitgrant.dev"

_RESOURCE = (API_GROUP, API_VERSION, "accessrequests")

log = logging.getLogger("jitgrant.operator")


def runtime_of(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError(
            "jitgrant runtime missing from kopf's memo; start the operator with jitgrant run"
        )
    return runtime


# kopf's own finalizer, which nothing carries: no kopf handler on AccessRequests requires one, and
# with jitgrant's name here kopf would strip it ("no handlers requiring it") from every replica.
# The leader keeps jitgrant's finalizer itself (reactor/finalizer.py).
KOPF_FINALIZER = f"{API_GROUP}/kopf-unused"


def configure(settings: kopf.OperatorSettings, *, instance: str = "jitgrant") -> None:
    settings.persistence.finalizer = KOPF_FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PROGRESS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PROGRESS_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    # `kubectl describe` shows Events "From jitgrant", not from the framework underneath.
    settings.posting.reporting_component = "jitgrant"
    settings.posting.reporting_instance = instance
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.batching.error_delays = RETRY_LADDER
    settings.queueing.exit_timeout = 5.0
    # No kopf peering (it pauses operators, it does not elect one): replicas elect a leader over a
    # Lease themselves (reactor/fencing.py).
    settings.peering.standalone = True
    settings.execution.max_workers = 8
    # Per-object workers exit after 5 s of quiet instead of holding memory for every request.
    settings.batching.idle_timeout = 5.0


def scheduler_of(memo: Any) -> Scheduler:
    scheduler = getattr(memo, "scheduler", None)
    if not isinstance(scheduler, Scheduler):
        raise kopf.PermanentError("jitgrant scheduler missing from kopf's memo; it starts with the runtime")
    return scheduler


def election_of(memo: Any) -> LeaderElection | None:
    election = getattr(memo, "election", None)
    return election if isinstance(election, LeaderElection) else None


def acting(memo: Any) -> bool:
    """Whether this replica may reconcile, expire and sweep: it holds the Lease (or runs alone)."""
    election = election_of(memo)
    return election is None or election.holds()


async def _collect_replay_set(runtime: Runtime) -> None:
    """The leader forgets used OIDC tokens once they have expired (clusters/replay.py)."""
    replay = getattr(runtime.oidc, "replay", None)
    if not isinstance(replay, SharedReplayCache):
        return
    while True:
        try:
            removed = await asyncio.to_thread(replay.collect)
            if removed:
                log.info("forgot %d expired token(s) of the replay set", removed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("collecting the replay set failed; retrying next sweep", exc_info=True)
        await asyncio.sleep(runtime.settings.sweep_interval.total_seconds())


def finalizers_of(memo: Any) -> finalizer.Finalizers:
    found = getattr(memo, "finalizers", None)
    if not isinstance(found, finalizer.Finalizers):
        raise kopf.PermanentError("jitgrant finalizers missing from kopf's memo; they start with the runtime")
    return found


async def _take_up_finalizers(runtime: Runtime, finalizers: finalizer.Finalizers) -> None:
    """What no leader did meanwhile: the finalizer on requests filed then, deletions to finish."""
    for stored in await runtime.own.list_requests():
        if stored.deleting and FINALIZER in stored.finalizers:
            finalizers.start(stored.namespace, stored.name)
        elif finalizer.needs_finalizer(stored):
            try:
                await finalizer.ensure(runtime, stored.namespace, stored.name)
            except ClusterAccessError as exc:
                # The reconciler adds it before granting anyway; taking over must not fail for it.
                log.warning("finalizer on %s/%s not added yet: %s", stored.namespace, stored.name, exc)
        elif finalizer.releasable(stored):
            await _release_finalizer(runtime, stored.namespace, stored.name)


async def _start_leading(
    runtime: Runtime,
    scheduler: Scheduler,
    tasks: set[asyncio.Task[None]],
    finalizers: finalizer.Finalizers,
) -> None:
    # Windows that closed while no leader was acting end now in the operator's own cluster, then
    # whatever the queue says is due. Other clusters are swept by the sweep task's first round, at
    # once but not inline: a target that never answers held start-up (and with it the webhooks,
    # which fail closed) for its 20 s read timeout (make chaos, hanging target).
    removed = await sweep_cluster(runtime, runtime.own)
    if removed:
        log.warning("sweep on taking over removed %d stale grant object(s)", removed)
    await _take_up_finalizers(runtime, finalizers)
    tasks.add(asyncio.create_task(sweep_forever(runtime), name="jitgrant-sweep"))
    tasks.add(asyncio.create_task(_collect_replay_set(runtime), name="jitgrant-replay-gc"))
    scheduler.wake()


async def _stop_leading(tasks: set[asyncio.Task[None]], finalizers: finalizer.Finalizers | None) -> None:
    if finalizers is not None:
        await finalizers.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


async def _release_finalizer(runtime: Runtime, namespace: str, name: str) -> None:
    """A finished request's grant ended: its finalizer has nothing left to guard (issue 23)."""
    try:
        await finalizer.release_finished(runtime, namespace, name)
    except ClusterAccessError as exc:  # the next event, or the next leader's take-over, retries
        log.warning("finalizer of finished %s/%s not released yet: %s", namespace, name, exc)


@kopf.on.startup(id="start-runtime")
async def start_runtime(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    runtime = runtime_of(memo)
    configure(
        settings,
        instance=runtime.settings.instance,
    )
    if runtime.settings.health_port is not None:
        # On kopf's own event loop, so a blocked loop fails liveness.
        await runtime.health.start_server(host="0.0.0.0", port=runtime.settings.health_port)  # noqa: S104
    runtime.health.expect_watch("accessrequests")
    await runtime.audit.start()
    scheduler = Scheduler(runtime, concurrency=runtime.settings.concurrency, acting=lambda: acting(memo))
    memo.scheduler = scheduler
    finalizers = finalizer.Finalizers(runtime)
    memo.finalizers = finalizers
    # Tasks that run only while this replica leads (the sweep, the replay set's collection).
    leading: set[asyncio.Task[None]] = set()
    memo.leading_tasks = leading
    election = election_of(memo)
    if election is not None and not isinstance(runtime.clock, ServerClock):
        # Replicas act on the API server's time, not their node's: a leader with a skewed clock
        # would end grants early or late by its skew (servertime.py).
        server_clock = ServerClock(runtime.clock)
        runtime.clock = server_clock
        election.local_clock = server_clock.local
        election.on_server_date = server_clock.sample
    if election is None:
        # Alone: windows that closed while the operator was down end before anything else is handled.
        await _start_leading(runtime, scheduler, leading, finalizers)
    else:

        async def started() -> None:
            await _start_leading(runtime, scheduler, leading, finalizers)

        async def stopped() -> None:
            await _stop_leading(leading, finalizers)

        memo.election_task = asyncio.create_task(
            election.run(on_started=started, on_stopped=stopped), name="jitgrant-election"
        )
    memo.scheduler_task = asyncio.create_task(scheduler.run(), name="jitgrant-scheduler")
    runtime.started.set()
    runtime.health.mark_started()


@kopf.on.cleanup(id="stop-runtime")
async def stop_runtime(memo: kopf.Memo, **_: Any) -> None:
    """Never raises: kopf closes its API sessions (its credentials vault) only after a cleanup that
    succeeded, and a failed one left sockets open past the loop's end."""
    try:
        await _stop(runtime_of(memo), memo)
    except Exception:
        log.exception("stopping the runtime failed")


async def _stop(runtime: Runtime, memo: kopf.Memo) -> None:
    runtime.stopping = True
    for name in ("scheduler_task", "election_task"):
        task = getattr(memo, name, None)
        if isinstance(task, asyncio.Task):
            task.cancel()  # the election releases the Lease on its way out
            await asyncio.gather(task, return_exceptions=True)
    found = getattr(memo, "finalizers", None)
    await _stop_leading(
        getattr(memo, "leading_tasks", set()),
        found if isinstance(found, finalizer.Finalizers) else None,
    )
    await runtime.events.close()
    await runtime.audit.close()
    await runtime.health.stop_server()


@kopf.on.event(API_GROUP, API_VERSION, "grantpolicies", id="recheck-grants-on-policy-change")
async def recheck_grants_on_policy_change(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A policy's spec changed or it was deleted: its live requests are held against it now."""
    runtime = getattr(memo, "runtime", None)
    if isinstance(runtime, Runtime):
        runtime.policy_seen(body.metadata.name or "", body.get("spec"), deleted=type == "DELETED", body=body)
    scheduler = getattr(memo, "scheduler", None)
    if isinstance(scheduler, Scheduler):
        generation = body.metadata.get("generation")
        scheduler.policy_seen(
            body.metadata.name or "",
            generation=generation if isinstance(generation, int) else None,
            event=type,
            spec=body.get("spec"),
        )


@kopf.on.event("", "v1", "namespaces", id="namespace-labels")
async def namespace_labels_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A Namespace's labels changed: grants under policies with a namespaceSelector are held against
    them again (a label removed ends the grants it allowed, as a narrowed policy does)."""
    runtime = getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        return
    labels = dict(body.metadata.labels or {})
    changed = runtime.namespace_seen(body.metadata.name or "", labels, deleted=type == "DELETED")
    scheduler = getattr(memo, "scheduler", None)
    if changed and isinstance(scheduler, Scheduler):
        for name, spec in list(runtime.watched_policies.items()):
            if spec.namespace_selector is not None:
                scheduler.policy_changed(name)


@kopf.on.event(*_RESOURCE, id="reconcile-on-change")
async def reconcile_on_change(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Every event queues the request at its due time; what is due now is reconciled at once.

    Every replica keeps the queue, so a new leader knows at once what is due; only the leader acts
    (and writes: this is a watching handler, so kopf itself writes nothing to AccessRequests).
    """
    runtime = runtime_of(memo)
    runtime.health.mark_watch_alive("accessrequests")
    scheduler = scheduler_of(memo)
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    if type == "DELETED":
        runtime.open_requests.forget(namespace, name)
        scheduler.forget(namespace, name)
        runtime.forget_request(f"{namespace}/{name}", body.metadata.uid or "")
        return
    runtime.open_requests.observe(body)
    stored = StoredRequest(body)
    if runtime.is_own_echo(body.metadata.uid or "", body.metadata.get("resourceVersion")):
        # This process's own write coming back: the pass that wrote it went on from the write's
        # answer and queued the request's next look itself, so the echo triggers no pass. The
        # scheduler still observes it (like kopf, which filters its own changes from cause
        # detection, not from processing): a grant this process activated is cut at its expiry.
        scheduler.observe(
            namespace, name, body.get("status") or {}, body.metadata.annotations, body=body, own=True
        )
        # The finalizer of a request that write finished is given back here (that write is the
        # last event such a request gets).
        if finalizer.releasable(stored) and acting(memo) and not runtime.stopping:
            await _release_finalizer(runtime, namespace, name)
        return
    if stored.deleting:
        # Deleting a request revokes its access first; the finalizer stays until that succeeded.
        scheduler.forget(namespace, name)
        if FINALIZER in stored.finalizers and acting(memo) and not runtime.stopping:
            finalizers_of(memo).start(namespace, name)
        return
    scheduler.observe(
        namespace, name, body.get("status") or {}, body.metadata.annotations, body=copy.deepcopy(dict(body))
    )
    if runtime.stopping or not acting(memo):
        return
    if finalizer.needs_finalizer(stored):
        # Requests are born with the finalizer (the mutating webhook adds it); one filed while the
        # webhooks were not ours gets it here, before anything can be granted.
        try:
            await finalizer.ensure(runtime, namespace, name)
        except ClusterAccessError as exc:
            log.warning("finalizer on %s/%s not added yet: %s", namespace, name, exc)
    elif finalizer.releasable(stored):
        await _release_finalizer(runtime, namespace, name)
    # What is due now is reconciled by the scheduler, in the order it became due and no more than
    # `--concurrency` at a time: a burst of requests is served first come, first served, instead
    # of every request in it advancing a step at a time and all of them finishing last.
