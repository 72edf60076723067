"""WATCH: history replay from a resourceVersion, 410 Gone, selector transitions, bookmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from . import errors
from .crud import Api
from .resources import ResourceType
from .selectors import FieldSelector, Selector, fields_match, labels_match
from .store import Event, Obj, TooOld

BOOKMARK_SECONDS = 10.0
DEFAULT_WATCH_SECONDS = 1800


def flag(value: str | None) -> bool:
    """Go's ``strconv.ParseBool`` truths: the Python client sends ``watch=True``."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


async def serve_watch(
    request: web.Request, api: Api, rt: ResourceType, namespace: str, labels: Selector, fields: FieldSelector
) -> web.StreamResponse:
    """A watch stream: one JSON event per line, chunked, until timeoutSeconds or the server stops."""
    query = request.query
    rv_text = query.get("resourceVersion", "")
    initial_end = flag(query.get("sendInitialEvents"))
    bookmarks = flag(query.get("allowWatchBookmarks"))
    timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
    store = api.store
    ns_filter = namespace or None if rt.namespaced else None

    def initial() -> list[Event]:
        events = [
            Event(
                int(o["metadata"]["resourceVersion"]),
                "ADDED",
                rt.key,
                o["metadata"].get("namespace", ""),
                o,
                None,
            )
            for o in store.objects(rt.key, ns_filter)
        ]
        if initial_end:
            events.append(Event(store.resource_version, "INITIAL-END", rt.key, "", {}, None))
        return events

    since: int | None = None
    if rv_text not in ("", "0") and not initial_end:
        try:
            since = int(rv_text)
        except ValueError as exc:
            raise errors.bad_request(f"invalid resource version: {rv_text}") from exc
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        watcher = store.subscribe(rt.key, ns_filter, since, initial)
    except TooOld as exc:
        await response.prepare(request)
        status = errors.gone(exc.requested, exc.oldest).status()
        await response.write((json.dumps({"type": "ERROR", "object": status}) + "\n").encode())
        await response.write_eof()
        return response
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, BOOKMARK_SECONDS) if bookmarks else remaining
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if bookmarks and loop.time() < deadline and watcher.queue.empty():
                    await _send(response, "BOOKMARK", _bookmark(rt, str(store.resource_version)))
                continue
            if event is None:
                break
            if event.type == "INITIAL-END":
                mark = _bookmark(rt, str(event.rv))
                mark["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                await _send(response, "BOOKMARK", mark)
                continue
            kind = _filtered_type(event, labels, fields)
            if kind is not None:
                await _send(response, kind, api.present(rt, event.obj))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.unsubscribe(watcher)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


def _bookmark(rt: ResourceType, rv: str) -> dict[str, Any]:
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": rv}}


async def _send(response: web.StreamResponse, kind: str, obj: Obj) -> None:
    await response.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())


def _matches(obj: Obj | None, labels: Selector, fields: FieldSelector) -> bool:
    if obj is None:
        return False
    return labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)


def _filtered_type(event: Event, labels: Selector, fields: FieldSelector) -> str | None:
    """The documented selector rule: leaving the selection is DELETED, entering it is ADDED."""
    if not labels and not fields:
        return event.type
    now = _matches(event.obj, labels, fields)
    if event.type == "ADDED":
        return "ADDED" if now else None
    if event.type == "DELETED":
        return "DELETED" if _matches(event.old, labels, fields) or now else None
    before = _matches(event.old, labels, fields)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None
