"""The sweep: expiry that does not depend on a timer having fired.

At start-up and then every `sweep_interval`, every RoleBinding and Role jitgrant labelled is checked
against its own `expires-at` annotation and its AccessRequest: past its window, owned by a request that
is gone, recreated (another uid) or already ended, it is removed. This is what revokes a grant whose
window closed while the operator was down.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from jitgrant.audit.records import AuditEvent, EventType
from jitgrant.clusters import grant_objects
from jitgrant.clusters.grant_objects import ManagedObject
from jitgrant.clusters.own import ClusterApi
from jitgrant.handlers.reconcile import Reconciler
from jitgrant.handlers.runtime import Runtime, TargetUnavailable
from jitgrant.models import Target
from jitgrant.models.request import TERMINAL_PHASES
from jitgrant.models.vocabulary import REQUEST_ANNOTATION, REQUEST_UID_LABEL

log = logging.getLogger("jitgrant.sweep")


def _why_remove(obj: ManagedObject, request: dict[str, object] | None, now: datetime) -> str | None:
    """Why this object must go, or None to keep it."""
    expiry = grant_objects.parse_expiry(obj)
    if expiry is None:
        return "it carries no readable expires-at annotation"
    if expiry <= now:
        return f"its window closed at {obj.annotations.get('jitgrant.dev/expires-at')}"
    if request is None:
        return f"its AccessRequest {obj.annotations.get(REQUEST_ANNOTATION)} no longer exists"
    metadata = request.get("metadata") or {}
    assert isinstance(metadata, dict)
    if metadata.get("uid") != obj.labels.get(REQUEST_UID_LABEL):
        return "its AccessRequest was deleted and recreated under the same name"
    status = request.get("status") or {}
    assert isinstance(status, dict)
    if status.get("phase") in {phase.value for phase in TERMINAL_PHASES}:
        return f"its AccessRequest already ended ({status.get('phase')})"
    return None


def _is_live_owner(obj: ManagedObject, request: dict[str, object] | None) -> bool:
    if request is None:
        return False
    metadata = request.get("metadata") or {}
    status = request.get("status") or {}
    assert isinstance(metadata, dict) and isinstance(status, dict)
    return bool(
        metadata.get("uid") == obj.labels.get(REQUEST_UID_LABEL)
        and status.get("phase") not in {phase.value for phase in TERMINAL_PHASES}
    )


async def sweep_cluster(runtime: Runtime, cluster: ClusterApi) -> int:
    """Remove every stale grant object in one cluster; returns how many the sweep itself removed.

    A stale object whose request is still live is ended through the request's own lifecycle first
    (so the request says Expired and the trail says why); whatever is left after that is deleted.
    """
    now = runtime.clock()
    removed = 0
    active_bindings = 0
    reconciler = Reconciler(runtime)
    managed = await grant_objects.list_managed(cluster, include_roles=runtime.settings.inline_rules_enabled)
    for obj in managed:
        if runtime.stopping:
            break
        namespace, _, name = obj.annotations.get(REQUEST_ANNOTATION, "").partition("/")
        request = await runtime.own.get_request(namespace, name) if namespace and name else None
        reason = _why_remove(obj, request, now)
        if reason is None:
            active_bindings += obj.kind == "RoleBinding"
            continue
        if _is_live_owner(obj, request):
            try:
                await reconciler.reconcile(namespace, name)
            except Exception:
                log.exception(
                    "ending %s/%s through its lifecycle failed; deleting its objects", namespace, name
                )
        if not await grant_objects.delete_managed(cluster, obj):
            continue
        removed += 1
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
    runtime.metrics.set_active_grants(cluster=cluster.name, count=active_bindings)
    return removed


async def _sweep_target(runtime: Runtime, target: Target) -> int:
    try:
        cluster = await runtime.housekeeping_cluster(target)
    except TargetUnavailable as exc:
        raise RuntimeError(f"cannot reach {target.cluster}: {exc}") from exc
    return await sweep_cluster(runtime, cluster)


async def sweep_all(runtime: Runtime) -> int:
    """Sweep every cluster at once: connecting to and sweeping one never waits on another."""
    targets = await runtime.sweep_targets()
    names = [runtime.own.name, *(target.cluster for target in targets)]
    results = await asyncio.gather(
        sweep_cluster(runtime, runtime.own),
        *(_sweep_target(runtime, target) for target in targets),
        return_exceptions=True,
    )
    total = 0
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            # One unreachable cluster must not stop the sweep of the others.
            log.error("sweep of cluster %s failed: %s", name, result)
            runtime.metrics.reconcile_error(handler="sweep")
        else:
            total += result
    return total


async def sweep_forever(runtime: Runtime) -> None:
    interval = runtime.settings.sweep_interval.total_seconds()
    while True:
        try:
            await sweep_all(runtime)
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
