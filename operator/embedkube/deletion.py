"""Deletion as the registry and the controllers behind it finish it: finalizers and deletionTimestamp,
namespace and CRD clean-up, and garbage collection by ownerReferences, all synchronous.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from .clock import Clock, rfc3339
from .resources import APIEXT, ResourceRegistry, ResourceType
from .store import Obj, Store

NAMESPACES = ("", "namespaces")
CRDS = (APIEXT, "customresourcedefinitions")


class Reaper:
    def __init__(
        self,
        *,
        registry: ResourceRegistry,
        store: Store,
        clock: Clock,
        forget_schema: Callable[[ResourceType], None],
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self._forget_schema = forget_schema

    def delete(self, rt: ResourceType, old: Obj, propagation: str = "") -> Obj:
        meta = old["metadata"]
        if meta.get("deletionTimestamp"):
            return old  # already terminating: nothing more to do until the finalizers are gone
        needs_wait = bool(meta.get("finalizers")) or rt.key in (NAMESPACES, CRDS)
        if not needs_wait:
            return self.remove(rt, old, propagation)
        obj = copy.deepcopy(old)
        obj["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
        obj["metadata"]["deletionGracePeriodSeconds"] = 0
        if rt.tracks_generation:
            obj["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
        if rt.key == NAMESPACES:
            obj["status"] = {"phase": "Terminating"}
        stored = self.store.write(rt.key, obj, old=old)
        if rt.key == NAMESPACES:
            self._empty_namespace(stored["metadata"]["name"])
        elif rt.key == CRDS:
            self._empty_crd(stored)
        current = self.store.get(rt.key, stored["metadata"].get("namespace", ""), stored["metadata"]["name"])
        return current if current is not None else stored

    def remove(self, rt: ResourceType, obj: Obj, propagation: str = "") -> Obj:
        gone = self.store.remove(rt.key, obj)
        meta = obj["metadata"]
        if rt.key == CRDS:
            for served in self.registry.unregister_crd(meta["name"]):
                self._forget_schema(served)
                self.store.drop_key(served.key)
        self._collect_garbage(meta["uid"], orphan=propagation == "Orphan")
        namespace = meta.get("namespace", "")
        if namespace:
            self.maybe_finish_namespace(namespace)
        if rt.custom:
            self._maybe_finish_crd(f"{rt.plural}.{rt.group}")
        return gone

    def _collect_garbage(self, owner_uid: str, *, orphan: bool) -> None:
        """Synchronous garbage collection of the dependents of a removed owner (ownerReferences)."""
        order = {rt.key: (index, rt) for index, rt in enumerate(self.stored_types())}
        # In the order a scan of every stored type would meet them, without the scan.
        found = sorted(
            (order[key][0], namespace, name, order[key][1])
            for key, namespace, name in self.store.dependents(owner_uid)
            if key in order
        )
        for _, dep_namespace, dep_name, rt in found:
            dep = self.store.get(rt.key, dep_namespace, dep_name)
            if dep is None:
                continue  # removed meanwhile by an earlier step of this collection
            refs = dep["metadata"].get("ownerReferences") or []
            remaining = [r for r in refs if r.get("uid") != owner_uid]
            if orphan or any(self._owner_exists(r, dep_namespace) is not False for r in remaining):
                updated = copy.deepcopy(dep)
                updated["metadata"]["ownerReferences"] = remaining
                if not remaining:
                    updated["metadata"].pop("ownerReferences")
                self.store.write(rt.key, updated, old=dep)
            else:
                self.delete(rt, dep)

    def _owner_exists(self, ref: Mapping[str, Any], namespace: str) -> bool | None:
        """As the garbage collector resolves an owner: by kind and name in the dependent's namespace
        (owners cannot be in another namespace), then by uid. None: unknown kind, cannot tell."""
        rt = self.registry.find_kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if rt is None:
            return None
        owner = self.store.peek(rt.key, namespace if rt.namespaced else "", str(ref.get("name", "")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def orphaned(self, obj: Obj) -> bool:
        """Whether every owner the object names is absent (so the collector deletes it)."""
        refs = obj["metadata"].get("ownerReferences") or []
        namespace = obj["metadata"].get("namespace", "")
        return bool(refs) and all(self._owner_exists(r, namespace) is False for r in refs)

    def collect_if_orphaned(self, rt: ResourceType, obj: Obj) -> None:
        """The collector also deletes a dependent whose owners are all absent, e.g. an owner named in
        another namespace: cross-namespace owner references are invalid by design."""
        namespace = obj["metadata"].get("namespace", "")
        if self.orphaned(obj):
            current = self.store.get(rt.key, namespace, obj["metadata"]["name"])
            if current is not None:
                self.delete(rt, current)

    def stored_types(self) -> list[ResourceType]:
        seen: dict[tuple[str, str], ResourceType] = {}
        for rt in self.registry.all_types():
            if not rt.virtual:
                seen.setdefault(rt.key, self.registry.preferred(rt.group, rt.plural) or rt)
        return list(seen.values())

    def _empty_namespace(self, namespace: str) -> None:
        for rt in self.stored_types():
            if rt.namespaced:
                for obj in self.store.objects(rt.key, namespace):
                    self.delete(rt, obj)
        self.maybe_finish_namespace(namespace)

    def maybe_finish_namespace(self, namespace: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if self.store.namespaces_in_use(namespace):
            return
        ns_rt = self.registry.get("", "v1", "namespaces")
        assert ns_rt is not None
        finalized = copy.deepcopy(ns)
        finalized["spec"]["finalizers"] = []
        if not ns["metadata"].get("finalizers"):
            self.remove(ns_rt, self.store.write(NAMESPACES, finalized, old=ns))

    def _empty_crd(self, crd: Obj) -> None:
        for rt in self.registry.crd_types(crd["metadata"]["name"])[:1]:
            for obj in self.store.objects(rt.key):
                self.delete(rt, obj)
        self._maybe_finish_crd(crd["metadata"]["name"])

    def _maybe_finish_crd(self, name: str) -> None:
        crd = self.store.get(CRDS, "", name)
        if crd is None or not crd["metadata"].get("deletionTimestamp") or crd["metadata"].get("finalizers"):
            return
        served = self.registry.crd_types(name)
        if served and self.store.objects(served[0].key):
            return
        crd_rt = self.registry.get(APIEXT, "v1", "customresourcedefinitions")
        assert crd_rt is not None
        self.remove(crd_rt, crd)
