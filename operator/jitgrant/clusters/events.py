"""`ClusterEvents`: the engine's EventRecorder over the events API (core/v1 Events in the operator's own
cluster), so `kubectl describe` tells a request's story, from whichever task ran the pass.

kopf's `kopf.event` posts only from kopf's own per-object tasks; passes the scheduler runs had no
Event (or reached into kopf's private posting queue). Events are a courtesy: `post` never waits and
never raises; one task posts them in order from a bounded queue, and drops (logged) when it is full.
The fields are those kopf posts (`kopf/_cogs/clients/events.py`), "From jitgrant" in `kubectl describe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import CoreV1Api

from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.own import ClusterApi

log = logging.getLogger("jitgrant.events")

QUEUE_LIMIT = 1000


def event_body(
    involved: Mapping[str, Any],
    *,
    warning: bool,
    reason: str,
    message: str,
    component: str,
    instance: str,
    now: datetime,
) -> dict[str, Any]:
    """A core/v1 Event about `involved` (an object's body: apiVersion, kind, metadata)."""
    meta = involved.get("metadata") or {}
    stamp = now.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": meta.get("namespace") or "default", "generateName": "jitgrant-event-"},
        "action": "Reconcile",
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1000],
        "reportingComponent": component,
        "reportingInstance": instance,
        "source": {"component": component},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": stamp,
    }


class ClusterEvents:
    """EventRecorder posting through the own cluster's client."""

    def __init__(self, api: ClusterApi, *, component: str = "jitgrant", instance: str = "jitgrant") -> None:
        self.api = api
        self.component = component
        self.instance = instance
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    def post(self, body: Mapping[str, Any], *, warning: bool, reason: str, message: str) -> None:
        event = event_body(
            body,
            warning=warning,
            reason=reason,
            message=message,
            component=self.component,
            instance=self.instance,
            now=datetime.now(UTC),
        )
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("Event queue full; the %s Event is not posted", reason)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="jitgrant-events")

    async def _drain(self) -> None:
        core = CoreV1Api(self.api.client)
        while True:
            event = await self._queue.get()
            try:
                await self.api.call(core.create_namespaced_event, event["metadata"]["namespace"], event)
            except ClusterAccessError as exc:
                log.debug("could not post the %s Event: %s", event["reason"], exc)
            finally:
                self._queue.task_done()

    async def close(self) -> None:
        """Post what is queued (briefly: the API server may be gone), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=2.0)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
