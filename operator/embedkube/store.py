"""Object storage: one global resourceVersion counter, a bounded event history and watchers.

Everything here runs on the server's event loop, so there are no locks: a write, its history
entry and the fan-out to watchers happen without an ``await`` in between, exactly as an etcd
revision is atomic. A watch that starts from a resourceVersion replays history and subscribes in
the same step, so no event can fall in between.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
StorageKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: StorageKey
    namespace: str
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    key: StorageKey
    namespace: str | None  # None: all namespaces
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        return event.key == self.key and (self.namespace is None or event.namespace == self.namespace)


class TooOld(Exception):
    """The requested resourceVersion was compacted away (-> 410 Gone)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(requested, oldest)
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, *, history: int = 10_000) -> None:
        self._rv = 0
        # key -> namespace -> name -> object. Stored objects are never changed in place (a write
        # stores a fresh copy), so peek() and view() can hand them out uncopied to readers.
        self._objects: dict[StorageKey, dict[str, dict[str, Obj]]] = {}
        # owner uid -> the objects naming it in ownerReferences, so garbage collection after a
        # delete looks up its dependents instead of scanning (and copying) every stored object.
        self._dependents: dict[str, set[tuple[StorageKey, str, str]]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted = 0  # events with rv <= this are gone
        self._watchers: set[Watcher] = set()

    @property
    def resource_version(self) -> int:
        return self._rv

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # ---- reads ----------------------------------------------------------------------------------

    def get(self, key: StorageKey, namespace: str, name: str) -> Obj | None:
        obj = self.peek(key, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    def peek(self, key: StorageKey, namespace: str, name: str) -> Obj | None:
        """The stored object itself, uncopied: read it, never change it."""
        return self._objects.get(key, {}).get(namespace, {}).get(name)

    def objects(self, key: StorageKey, namespace: str | None = None) -> list[Obj]:
        return [copy.deepcopy(obj) for obj in self.view(key, namespace)]

    def view(self, key: StorageKey, namespace: str | None = None) -> list[Obj]:
        """The stored objects, uncopied, sorted by (namespace, name): read them, never change them."""
        spaces = self._objects.get(key, {})
        if namespace is not None:
            items = spaces.get(namespace, {})
            return [items[name] for name in sorted(items)]
        return [spaces[ns][name] for ns in sorted(spaces) for name in sorted(spaces[ns])]

    def dependents(self, owner_uid: str) -> list[tuple[StorageKey, str, str]]:
        """(key, namespace, name) of every stored object with an ownerReference to ``owner_uid``."""
        return sorted(self._dependents.get(owner_uid, ()))

    def namespaces_in_use(self, namespace: str) -> list[StorageKey]:
        return [key for key, spaces in self._objects.items() if spaces.get(namespace)]

    # ---- writes ---------------------------------------------------------------------------------

    def write(self, key: StorageKey, obj: Obj, *, old: Obj | None) -> Obj:
        """Store ``obj`` (new or replacing ``old``) under a fresh resourceVersion."""
        meta = obj["metadata"]
        rv = self.next_rv()
        meta["resourceVersion"] = str(rv)
        namespace = meta.get("namespace", "")
        stored = copy.deepcopy(obj)
        self._unindex(key, self.peek(key, namespace, meta["name"]))
        self._objects.setdefault(key, {}).setdefault(namespace, {})[meta["name"]] = stored
        self._index(key, stored)
        self._emit(
            Event(rv, "MODIFIED" if old is not None else "ADDED", key, namespace, copy.deepcopy(obj), old)
        )
        return obj

    def remove(self, key: StorageKey, obj: Obj) -> Obj:
        """Remove ``obj``; the DELETED event carries the revision of the deletion, as etcd's does."""
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        spaces = self._objects.get(key, {})
        self._unindex(key, spaces.get(namespace, {}).pop(meta["name"], None))
        if namespace in spaces and not spaces[namespace]:
            del spaces[namespace]
        rv = self.next_rv()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._emit(Event(rv, "DELETED", key, namespace, gone, obj))
        return gone

    def drop_key(self, key: StorageKey) -> None:
        for items in self._objects.pop(key, {}).values():
            for obj in items.values():
                self._unindex(key, obj)

    def _index(self, key: StorageKey, obj: Obj) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            entry = (key, meta.get("namespace", ""), meta["name"])
            self._dependents.setdefault(str(ref.get("uid", "")), set()).add(entry)

    def _unindex(self, key: StorageKey, obj: Obj | None) -> None:
        if obj is None:
            return
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            uid = str(ref.get("uid", ""))
            entries = self._dependents.get(uid)
            if entries is not None:
                entries.discard((key, meta.get("namespace", ""), meta["name"]))
                if not entries:
                    del self._dependents[uid]

    def _emit(self, event: Event) -> None:
        self._history.append(event)
        if len(self._history) == self._history.maxlen:
            self._compacted = max(self._compacted, self._history[0].rv - 1)
        for watcher in list(self._watchers):
            if watcher.wants(event):
                watcher.queue.put_nowait(event)

    def compact(self) -> None:
        """Forget all history, like an etcd compaction: older watches then get 410 Gone."""
        self._history.clear()
        self._compacted = self._rv

    # ---- watches --------------------------------------------------------------------------------

    def subscribe(
        self,
        key: StorageKey,
        namespace: str | None,
        since: int | None,
        initial: Callable[[], Iterable[Event]] | None = None,
    ) -> Watcher:
        """Start a watch: replay events after ``since`` (or ``initial()``), then follow live events."""
        if since is not None and since < self._compacted:
            raise TooOld(since, self._compacted + 1)
        watcher = Watcher(key, namespace)
        if since is not None:
            for event in self._history:
                if event.rv > since and watcher.wants(event):
                    watcher.queue.put_nowait(event)
        elif initial is not None:
            for event in initial():
                watcher.queue.put_nowait(event)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def close_watchers(self) -> None:
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)
        self._watchers.clear()
