"""kopf registrations. Handlers stay thin: they find the Runtime and hand over to the Reconciler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from jitgrant.handlers import admission as _admission  # noqa: F401 - registers the webhooks
from jitgrant.handlers import policy_admission as _policy_admission  # noqa: F401 - GrantPolicy webhook
from jitgrant.handlers import policy_status as _policy_status  # noqa: F401 - GrantPolicy Ready condition
from jitgrant.handlers.reconcile import Reconciler
from jitgrant.handlers.runtime import Runtime
from jitgrant.handlers.sweep import sweep_all, sweep_forever
from jitgrant.models import API_GROUP, API_VERSION
from jitgrant.models.request import TERMINAL_PHASES
from jitgrant.models.vocabulary import FINALIZER, REVOKE_ANNOTATION

PROGRESS_PREFIX = "jitgrant.dev"

_TERMINAL = frozenset(phase.value for phase in TERMINAL_PHASES)
_RESOURCE = (API_GROUP, API_VERSION, "accessrequests")

log = logging.getLogger("jitgrant.operator")


def runtime_of(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError(
            "jitgrant runtime missing from kopf's memo; start the operator with jitgrant run"
        )
    return runtime


def configure(settings: kopf.OperatorSettings, *, instance: str = "jitgrant") -> None:
    settings.persistence.finalizer = FINALIZER
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
    settings.batching.error_delays = (1, 2, 5, 10, 30)
    settings.queueing.exit_timeout = 5.0
    # One replica, Recreate strategy: no peering (peering is not leader election anyway).
    settings.peering.standalone = True
    settings.execution.max_workers = 8
    # Per-object workers exit after 5 s of quiet instead of holding memory for every request.
    settings.batching.idle_timeout = 5.0


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
    # Windows that closed while the operator was down end now, before anything else is handled.
    removed = await sweep_all(runtime)
    if removed:
        log.warning("start-up sweep removed %d stale grant object(s)", removed)
    runtime.sweep_task = asyncio.create_task(sweep_forever(runtime), name="jitgrant-sweep")
    runtime.started.set()
    runtime.health.mark_started()


@kopf.on.cleanup(id="stop-runtime")
async def stop_runtime(memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.stopping = True
    if runtime.sweep_task is not None:
        runtime.sweep_task.cancel()
        await asyncio.gather(runtime.sweep_task, return_exceptions=True)
    await runtime.audit.close()
    await runtime.health.stop_server()


@kopf.on.event(*_RESOURCE, id="reconcile-on-change")
async def reconcile_on_change(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.health.mark_watch_alive("accessrequests")
    if type == "DELETED" or body.get("status", {}).get("phase") in _TERMINAL:
        return
    try:
        await Reconciler(runtime).reconcile(body.metadata.namespace or "", body.metadata.name or "")
    except Exception:
        # Events are not retried by kopf; the clock below picks the request up again.
        runtime.metrics.reconcile_error(handler="reconcile-on-change")
        log.exception("reconciling %s/%s failed; will retry", body.metadata.namespace, body.metadata.name)


def _not_ended(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in _TERMINAL


@kopf.timer(*_RESOURCE, id="reconcile-clock", interval=1.0, when=_not_ended)
async def reconcile_clock(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Time-driven transitions (expiry, pending time-out) and retries of failed attempts.

    Cheap when nothing is due: it reads the absolute times kept in status and calls the API only
    when one has passed, so `expiresAt` survives any restart of the operator.
    """
    runtime = runtime_of(memo)
    status = body.get("status", {})
    phase = status.get("phase")
    now = runtime.clock()
    if phase == "Active":
        expires = status.get("expiresAt")
        if expires and _parse(expires) > now and REVOKE_ANNOTATION not in body.metadata.annotations:
            return
    try:
        await Reconciler(runtime).reconcile(body.metadata.namespace or "", body.metadata.name or "")
    except Exception:
        runtime.metrics.reconcile_error(handler="reconcile-clock")
        log.exception("reconciling %s/%s failed; will retry", body.metadata.namespace, body.metadata.name)


@kopf.on.delete(*_RESOURCE, id="revoke-on-delete")
async def revoke_on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Deleting a request revokes its access first; kopf keeps the finalizer until this succeeds."""
    runtime = runtime_of(memo)
    try:
        await Reconciler(runtime).revoke_for_deletion(body)
    except Exception as exc:
        runtime.metrics.reconcile_error(handler="revoke-on-delete")
        raise kopf.TemporaryError(f"revoking before deletion failed: {exc}", delay=2) from exc


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))
