"""The sweep: expiry that does not depend on a timer having fired.

At start-up and then every `sweep_interval`, every RoleBinding labelled as jitgrant's, and every
ServiceAccount, kubeconfig Secret and reader Role so labelled in the grants namespace, is looked at.
One the operator cannot prove it made (no valid owner seal: someone wrote the labels) is never
touched; it is counted in `jitgrant_unproven_objects` and logged, so whoever runs
the operator notices objects being planted. One it made is checked against its own `expires-at`
annotation and its AccessRequest: past its window, owned by a request that is gone, recreated (another
uid) or already ended, it is removed. This is what revokes a grant whose window closed while the
operator was down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from datetime import datetime

from jitgrant.audit.records import AuditEvent
from jitgrant.clusters import grant_objects
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.port import ClusterObject, GrantTarget, StoredRequest
from jitgrant.lifecycle.extension import extended_end
from jitgrant.models import Target
from jitgrant.models.vocabulary import EXPIRES_AT_ANNOTATION, REQUEST_ANNOTATION, REQUEST_UID_LABEL, EventType
from jitgrant.reactor.runtime import Runtime
from jitgrant.reconcile.driver import Reconciler

log = logging.getLogger("jitgrant.sweep")


def _why_remove(obj: ClusterObject, request: StoredRequest | None, now: datetime) -> str | None:
    """Why this (proven) object must go, or None to keep it."""
    expiry = grant_objects.parse_expiry(obj)
    if expiry is None:
        return "it carries no readable expires-at annotation"
    if request is not None and request.uid == obj.labels.get(REQUEST_UID_LABEL):
        expiry = max(expiry, extended_end(request.body.get("status") or {}) or expiry)  # an extension
    if expiry <= now:
        return f"its window closed at {obj.annotations.get(EXPIRES_AT_ANNOTATION)}"
    if request is None:
        return f"its AccessRequest {obj.annotations.get(REQUEST_ANNOTATION)} no longer exists"
    if request.uid != obj.labels.get(REQUEST_UID_LABEL):
        return "its AccessRequest was deleted and recreated under the same name"
    if request.phase is not None and request.phase.terminal:
        return f"its AccessRequest already ended ({request.phase.value})"
    return None


def _is_live_owner(obj: ClusterObject, request: StoredRequest | None) -> bool:
    return bool(
        request is not None
        and request.uid == obj.labels.get(REQUEST_UID_LABEL)
        and not (request.phase is not None and request.phase.terminal)
    )


# Deletions (and lifecycle endings) the sweep runs at once per cluster: thousands of stale objects
# after an outage end in seconds, without flooding the API server.
SWEEP_CONCURRENCY = 8

RequestKey = tuple[str, str]  # (namespace, name)


def _request_key(obj: ClusterObject) -> RequestKey | None:
    namespace, _, name = obj.annotations.get(REQUEST_ANNOTATION, "").partition("/")
    return (namespace, name) if namespace and name else None


def _report_unproven(runtime: Runtime, cluster: GrantTarget, obj: ClusterObject) -> None:
    # Once per object and operator run: the gauge keeps showing it, the log need not.
    seen = (cluster.name, obj.uid)
    level = logging.DEBUG if seen in runtime.unproven_seen else logging.WARNING
    runtime.unproven_seen.add(seen)
    log.log(
        level,
        "%s %s/%s in %s carries jitgrant's labels but not its seal: left alone (planted?)",
        obj.kind,
        obj.namespace,
        obj.name,
        cluster.name,
    )


class RequestsOnce:
    """The operator's AccessRequests, listed at most once per sweep however many clusters ask
    (once per target made a sweep cost targets x stored requests)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._listed: asyncio.Task[dict[RequestKey, StoredRequest]] | None = None
        # When the list was asked for (loop time): a cluster whose objects were listed after that
        # may hold an object of a request created since, which the list cannot show.
        self.started: float | None = None

    async def get(self) -> dict[RequestKey, StoredRequest]:
        if self._listed is None:
            self.started = asyncio.get_running_loop().time()
            self._listed = asyncio.ensure_future(self._list())
        return await asyncio.shield(self._listed)

    async def _list(self) -> dict[RequestKey, StoredRequest]:
        return {(r.namespace, r.name): r for r in await self._runtime.own.list_requests()}

    async def confirm(
        self, requests: dict[RequestKey, StoredRequest], keys: set[RequestKey], *, objects_listed: float
    ) -> dict[RequestKey, StoredRequest]:
        """`requests` with each of `keys` read again when the shared list was started before this
        cluster's objects were listed (clusters sweep on their own schedules, so one may list its
        objects well after another started the list): a request missing from it may be newer."""
        if self.started is None or self.started >= objects_listed or not keys:
            return requests
        fresh = dict(requests)
        for namespace, name in sorted(keys):
            found = await self._runtime.own.get_request(namespace, name)
            if found is not None:
                fresh[(namespace, name)] = found
        return fresh


async def sweep_cluster(
    runtime: Runtime, cluster: GrantTarget, requests_once: RequestsOnce | None = None
) -> int:
    """Remove every stale grant object in one cluster; returns how many the sweep itself removed.

    LISTs decide everything: the labelled objects (RoleBindings in every namespace, the identity
    objects in the grants namespace), then the AccessRequests (no GET per object; listed once per
    sweep, shared by every cluster the sweep covers).
    A stale object whose request is still live is ended through the request's own lifecycle first
    (so the request says Expired and the trail says why); whatever is left after that is deleted.
    """
    now = runtime.clock()
    unproven: Counter[str] = Counter()
    key = runtime.settings.receipt_key
    proven: list[ClusterObject] = []
    grants_namespace = runtime.settings.grants_namespace
    own = cluster is runtime.own
    for obj in await grant_objects.list_labelled(cluster, grants_namespace=grants_namespace, own=own):
        if grant_objects.proven_ours(obj, key=key, cluster=cluster.name):
            proven.append(obj)
        else:
            unproven[obj.kind] += 1
            _report_unproven(runtime, cluster, obj)
    # Listed after the objects: an object's request is created before the object, so a request
    # missing from this list was deleted, not yet to come. A phase read here can only be behind
    # (terminal phases stay terminal): at worst an object is kept until the next sweep.
    objects_listed = asyncio.get_running_loop().time()
    requests: dict[RequestKey, StoredRequest] = {}
    if proven:
        once = requests_once or RequestsOnce(runtime)
        requests = await once.get()
        unknown: set[RequestKey] = set()
        for obj in proven:
            owner = _request_key(obj)
            if owner is not None and (
                owner not in requests or requests[owner].uid != obj.labels.get(REQUEST_UID_LABEL)
            ):
                unknown.add(owner)
        requests = await once.confirm(requests, unknown, objects_listed=objects_listed)
    active_bindings = 0
    stale: list[tuple[ClusterObject, RequestKey | None, str]] = []
    live_owners: set[RequestKey] = set()
    for obj in proven:
        request_key = _request_key(obj)
        request = requests.get(request_key) if request_key else None
        reason = _why_remove(obj, request, now)
        if reason is None:
            active_bindings += obj.kind == "RoleBinding"
            continue
        stale.append((obj, request_key, reason))
        if request_key is not None and _is_live_owner(obj, request):
            live_owners.add(request_key)
    slots = asyncio.Semaphore(SWEEP_CONCURRENCY)
    reconciler = Reconciler(runtime)

    async def end(namespace: str, name: str) -> None:
        async with slots:
            if runtime.stopping:
                return
            try:
                await reconciler.reconcile(namespace, name)
            except Exception:
                log.exception(
                    "ending %s/%s through its lifecycle failed; deleting its objects", namespace, name
                )

    async def remove(obj: ClusterObject, request_key: RequestKey | None, reason: str) -> bool:
        async with slots:
            if runtime.stopping:
                return False
            if not await cluster.delete_object(obj.kind, obj.namespace, obj.name, uid=obj.uid):
                return False  # gone already (its lifecycle just ended it) or another object by now
        namespace, name = request_key or ("", "")
        log.warning(
            "sweep removed %s %s/%s in %s: %s", obj.kind, obj.namespace, obj.name, cluster.name, reason
        )
        await runtime.audit.record(
            AuditEvent(
                type=EventType.CLEANED_UP,
                time=now,
                request_uid=obj.labels.get(REQUEST_UID_LABEL, ""),
                request_name=name,
                request_namespace=namespace,
                policy=None,
                cluster=cluster.name,
                requester=None,
                scope=None,
                window=None,
                decision="removed",
                reason=f"{obj.kind} {obj.namespace}/{obj.name} removed by the sweep: {reason}",
                binding=obj.name if obj.kind == "RoleBinding" else None,
            )
        )
        return True

    # Each live owner once (its objects go with it), then whatever is still there.
    await asyncio.gather(*(end(*owner) for owner in sorted(live_owners)))
    removed = sum(await asyncio.gather(*(remove(*item) for item in stale)))
    runtime.metrics.set_active_grants(cluster=cluster.name, count=active_bindings)
    for kind in grant_objects.SWEPT_KINDS:
        runtime.metrics.set_unproven_objects(cluster=cluster.name, kind=kind, count=unproven[kind])
    return removed


async def _sweep_target(runtime: Runtime, target: Target, requests_once: RequestsOnce) -> int:
    try:
        cluster = await runtime.housekeeping_cluster(target)
        removed = await sweep_cluster(runtime, cluster, requests_once)
    except ClusterAccessError as exc:
        runtime.cluster_failed(target.cluster, exc)  # logged once per state change, not per sweep
        raise
    runtime.cluster_reached(target.cluster)
    return removed


async def sweep_all(runtime: Runtime) -> int:
    """Sweep every cluster at once: connecting to and sweeping one never waits on another. Targets
    are keyed by cluster identity, so same-named clusters in two regions are both swept."""
    targets = await runtime.sweep_targets()
    names = [runtime.own.name, *(target.cluster for target in targets)]
    requests_once = RequestsOnce(runtime)
    results = await asyncio.gather(
        sweep_cluster(runtime, runtime.own, requests_once),
        *(_sweep_target(runtime, target, requests_once) for target in targets),
        return_exceptions=True,
    )
    total = 0
    for name, result in zip(names, results, strict=True):
        if isinstance(result, ClusterAccessError):
            # One unreachable cluster must not stop the sweep of the others; its state change
            # was logged already.
            log.debug("sweep of cluster %s failed: %s", name, result)
            runtime.metrics.reconcile_error(handler="sweep")
        elif isinstance(result, BaseException):
            log.error("sweep of cluster %s failed: %s", name, result)
            runtime.metrics.reconcile_error(handler="sweep")
        else:
            total += result
    return total


async def sweep_forever(runtime: Runtime) -> None:
    """Every `sweep_interval`: the own cluster, then each target cluster on a task of its own, so a
    cluster that is slow or dark (its calls wait out their timeouts until its circuit opens) never
    delays another's sweep; a target whose last sweep is still running is skipped this round. The
    operator's AccessRequests are listed once per round, for all of them (RequestsOnce)."""
    interval = runtime.settings.sweep_interval.total_seconds()
    running: dict[str, asyncio.Task[int]] = {}
    try:
        while True:
            try:
                requests_once = RequestsOnce(runtime)
                for target in await runtime.sweep_targets():
                    if target.cluster not in running:
                        task = asyncio.create_task(_sweep_target(runtime, target, requests_once))
                        running[target.cluster] = task
                        task.add_done_callback(
                            functools.partial(_target_swept, runtime, running, target.cluster)
                        )
                await sweep_cluster(runtime, runtime.own, requests_once)
                # The sweep's list calls prove the API answers; kopf drops bookmarks, so on a quiet
                # cluster the watch itself says nothing for a long time.
                runtime.health.mark_watch_alive("accessrequests")
                runtime.metrics.set_audit_spool_depth(runtime.audit.depth())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; retrying in %s s", interval)
                runtime.metrics.reconcile_error(handler="sweep")
            await asyncio.sleep(interval)
    finally:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)


def _target_swept(
    runtime: Runtime, running: dict[str, asyncio.Task[int]], cluster: str, done: asyncio.Task[int]
) -> None:
    running.pop(cluster, None)
    if done.cancelled():
        return
    error = done.exception()
    if isinstance(error, ClusterAccessError):
        # Its state change was logged already (Runtime.cluster_failed, the gate).
        log.debug("sweep of cluster %s failed: %s", cluster, error)
        runtime.metrics.reconcile_error(handler="sweep")
    elif error is not None:
        log.error("sweep of cluster %s failed: %s", cluster, error)
        runtime.metrics.reconcile_error(handler="sweep")
