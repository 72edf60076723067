"""The REST semantics of stored resources: create, update, patch, delete, as the generic registry does.

Pipeline of a write, in the real server's order: decode (defaults from the URL, prune and default
custom resources) -> mutating admission -> system metadata (name from generateName, uid,
timestamps, generation), status subresource rules -> validation (names, types, schema, CEL) ->
RBAC escalation checks -> validating admission -> optimistic concurrency and storage.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .admission import Attributes as AdmissionAttrs
from .admission import WebhookCaller
from .authn import MASTERS, User
from .clock import Clock, rfc3339
from .deletion import Reaper
from .errors import ApiError, Cause
from .escalation import check_escalation
from .patching import JSON_PATCH, STRATEGIC, apply_patch
from .rbac import RbacAuthorizer
from .resources import APIEXT, ResourceRegistry, ResourceType
from .schema import CrdSchema
from .selectors import FieldSelector, Selector, fields_match, from_label_selector, labels_match
from .store import Obj, Store
from .validation import metadata_causes, name_causes, type_causes
from .webhookconfig import default_webhook_configuration, webhook_configuration_causes

NAMESPACES = ("", "namespaces")
CRDS = (APIEXT, "customresourcedefinitions")
CLUSTER_ROLES = ("rbac.authorization.k8s.io", "clusterroles")
SYSTEM = User("system:apiserver", "", (MASTERS,))
# kube-controller-manager's garbage collector with --use-service-account-credentials, as upstream.
GARBAGE_COLLECTOR = User(
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "",
    ("system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"),
)
# The collector's retries of a deletion admission refused (upstream backs off in its work queue).
_COLLECT_DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 5.0)
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as k8s.io/apimachinery/pkg/util/rand


_PATCH_RETRIES = 10


class StaleBase(Exception):
    """The object changed between reading it and writing it (while admission was awaited)."""


@dataclass
class Call:
    """One request: who asks, and the options that change how a write behaves."""

    user: User
    dry_run: bool = False
    field_validation: str = ""  # Strict, Warn (default), Ignore
    warnings: list[str] = field(default_factory=list)


def _content(obj: Mapping[str, Any], *, with_status: bool) -> dict[str, Any]:
    """The part of an object whose change bumps metadata.generation."""
    skip = {"metadata", "apiVersion", "kind"} | (set() if with_status else {"status"})
    return {k: v for k, v in obj.items() if k not in skip}


class Api:
    def __init__(
        self,
        *,
        registry: ResourceRegistry,
        store: Store,
        clock: Clock,
        authorizer: RbacAuthorizer,
        webhooks: WebhookCaller,
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.authorizer = authorizer
        self.webhooks = webhooks
        self._schemas: dict[tuple[str, str, str], CrdSchema] = {}
        self.reaper = Reaper(registry=registry, store=store, clock=clock, forget_schema=self._forget_schema)
        self._collecting: set[asyncio.Task[None]] = set()

    def _forget_schema(self, rt: ResourceType) -> None:
        self._schemas.pop((rt.group, rt.version, rt.plural), None)

    # ---- helpers ----------------------------------------------------------------------------------

    def schema(self, rt: ResourceType) -> CrdSchema | None:
        if not rt.custom or not rt.schema:
            return None
        key = (rt.group, rt.version, rt.plural)
        if key not in self._schemas:
            self._schemas[key] = CrdSchema(rt.schema)
        return self._schemas[key]

    def present(self, rt: ResourceType, obj: Obj) -> Obj:
        """An object as served in ``rt``'s version (CRD conversion strategy None)."""
        out = {"apiVersion": rt.api_version, "kind": rt.kind}
        out.update({k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return self.present(rt, obj)

    def objects(self, rt: ResourceType, namespace: str, labels: Selector, fields: FieldSelector) -> list[Obj]:
        # present() copies what it serves, so the stored objects need no copy of their own first.
        items = self.store.view(rt.key, namespace or None if rt.namespaced else None)
        return [
            self.present(rt, o)
            for o in items
            if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
        ]

    def _now(self) -> str:
        return rfc3339(self.clock.now())

    def _check_namespace(self, rt: ResourceType, namespace: str, *, creating: bool) -> None:
        """NamespaceLifecycle: no content in a missing namespace, no new content in a terminating one."""
        if not rt.namespaced:
            return
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                rt.plural,
                rt.group,
                "",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _decode(self, rt: ResourceType, body: Any, namespace: str, call: Call) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the object provided is unrecognized (must be of type object)")
        obj = copy.deepcopy(body)
        api_version, kind = obj.setdefault("apiVersion", rt.api_version), obj.setdefault("kind", rt.kind)
        if api_version != rt.api_version or kind != rt.kind:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
                if api_version != rt.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if rt.key == ("", "secrets"):
            _decode_secret(obj)
        self._prune_and_default(rt, obj, call)
        return obj

    def _prune_and_default(self, rt: ResourceType, obj: Obj, call: Call) -> None:
        schema = self.schema(rt)
        if schema is None:
            return
        pruned = schema.prune(obj)
        if pruned and call.field_validation == "Strict":
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in pruned)
            )
        if pruned and call.field_validation != "Ignore":
            call.warnings.extend(f'unknown field "{p}"' for p in pruned)
        schema.default(obj)

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        causes: list[Cause] = []
        if old is None:
            causes += name_causes(rt, meta["name"])
        causes += metadata_causes(meta)
        if rt.group == "admissionregistration.k8s.io" and rt.plural.endswith("webhookconfigurations"):
            # Defaulting happens before validation, as in the real server's decode step.
            mutating = rt.plural.startswith("mutating")
            default_webhook_configuration(obj, mutating=mutating)
            causes += webhook_configuration_causes(obj, mutating=mutating)
        causes += type_causes(rt, obj, old)
        schema = self.schema(rt)
        if schema is not None:
            causes += schema.validate(obj, old)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = [
                f for f in meta.get("finalizers") or () if f not in (old["metadata"].get("finalizers") or ())
            ]
            if added:
                rendered = "[]string{" + ", ".join(f'"{f}"' for f in added) + "}"
                causes.append(
                    Cause(
                        "metadata.finalizers",
                        "FieldValueForbidden",
                        f"Forbidden: no new finalizers can be added if the object is being deleted, "
                        f"found new finalizers {rendered}",
                    )
                )
        if causes:
            raise errors.invalid(rt.kind, rt.group, meta.get("name", ""), causes)

    def _admission(
        self,
        rt: ResourceType,
        call: Call,
        operation: str,
        namespace: str,
        name: str,
        subresource: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> AdmissionAttrs:
        return AdmissionAttrs(
            rt=rt,
            subresource=subresource,
            operation=operation,
            namespace=namespace,
            name=name,
            user=call.user,
            dry_run=call.dry_run,
            options=options,
            warnings=call.warnings,
        )

    # ---- create -----------------------------------------------------------------------------------

    async def create(self, call: Call, rt: ResourceType, namespace: str, body: Any) -> Obj:
        obj = self._decode(rt, body, namespace, call)
        meta = obj["metadata"]
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.invalid(
                rt.kind,
                rt.group,
                "",
                [
                    Cause(
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        self._check_namespace(rt, namespace, creating=True)
        if meta.get("resourceVersion"):
            raise errors.internal("resourceVersion should not be set on objects to be created")
        for key in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "managedFields",
        ):
            meta.pop(key, None)
        if rt.has_status:
            obj.pop("status", None)
        # As in the real server, mutating webhooks see the object before name generation and uid.
        attrs = self._admission(
            rt,
            call,
            "CREATE",
            namespace,
            meta.get("name", ""),
            options={"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        mutated = await self.webhooks.mutate(attrs, obj, None)
        if mutated is not obj and mutated is not None:
            obj = mutated
            self._prune_and_default(rt, obj, call)
        meta = obj["metadata"]
        if not meta.get("name"):
            meta["name"] = meta.get("generateName", "") + "".join(
                secrets.choice(_GENERATE_CHARS) for _ in range(5)
            )
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._now()
        if rt.tracks_generation:
            meta["generation"] = 1
        self._initial_status(rt, obj)
        self._validate(rt, obj, None)
        check_escalation(self.authorizer, call.user, rt, obj, None)
        attrs.name = meta["name"]
        await self.webhooks.validate(attrs, obj, None)
        if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(rt.plural, rt.group, meta["name"])
        if call.dry_run:
            return self.present(rt, obj)
        stored = self.store.write(rt.key, obj, old=None)
        self._after_write(rt, stored, None)
        return self.present(rt, stored)

    def create_internal(self, rt: ResourceType, obj: Obj) -> Obj:
        """Bootstrap objects: no admission, no authorization, as the API server's own post-start hooks."""
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        meta = obj.setdefault("metadata", {})
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=self._now())
        if rt.tracks_generation:
            meta["generation"] = 1
        self._initial_status(rt, obj)
        self._validate(rt, obj, None)
        stored = self.store.write(rt.key, obj, old=None)
        self._after_write(rt, stored, None)
        return stored

    def _initial_status(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == NAMESPACES:
            # The NamespaceDefaultLabelName default every real API server applies.
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
        elif rt.key == ("", "pods"):
            obj["status"] = {"phase": "Pending"}
        elif rt.key == CRDS:
            obj["status"] = crd_status(obj, self._now())
        elif rt.key == ("apps", "deployments"):
            obj["status"] = {}

    # ---- update and patch --------------------------------------------------------------------------

    async def update(
        self, call: Call, rt: ResourceType, namespace: str, name: str, body: Any, subresource: str = ""
    ) -> Obj:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        obj = self._decode(rt, body, ns, call)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        if not meta.get("resourceVersion") and rt.custom:
            raise errors.invalid(
                rt.kind,
                rt.group,
                name,
                [
                    Cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        try:
            return await self._update(call, rt, old, obj, subresource)
        except StaleBase:
            raise errors.conflict(rt.plural, rt.group, name, errors.MODIFIED) from None

    async def patch(
        self,
        call: Call,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str = "",
    ) -> Obj:
        # A patch is re-applied to the fresh object when another write won the race, as the real
        # server's GuaranteedUpdate does; a resourceVersion in the patch still conflicts.
        for _ in range(_PATCH_RETRIES):
            try:
                return await self._patch_once(call, rt, namespace, name, content_type, patch, subresource)
            except StaleBase:
                continue
        raise errors.conflict(rt.plural, rt.group, name, errors.MODIFIED)

    async def _patch_once(
        self,
        call: Call,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str,
    ) -> Obj:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        if content_type == STRATEGIC and rt.custom:
            raise errors.unsupported_media_type(content_type, _patch_types(rt))
        current = self.present(rt, old)
        if content_type != JSON_PATCH:
            # Only a resourceVersion in a merge patch asks for a check; a JSON patch sees the
            # current one, so its `test` op on /metadata/resourceVersion works (kopf relies on it).
            current["metadata"].pop("resourceVersion")
        patched = apply_patch(content_type, current, patch)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch did not produce an object")
        patched.setdefault("metadata", {})["name"] = name
        obj = self._decode(rt, patched, ns, call)
        return await self._update(call, rt, old, obj, subresource)

    async def _update(self, call: Call, rt: ResourceType, old: Obj, obj: Obj, subresource: str) -> Obj:
        meta, old_meta = obj["metadata"], old["metadata"]
        name = old_meta["name"]
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old_meta["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name, errors.MODIFIED)
        self._check_namespace(rt, meta.get("namespace", ""), creating=False)
        old_view = self.present(rt, old)
        attrs = self._admission(
            rt,
            call,
            "UPDATE",
            meta.get("namespace", ""),
            name,
            subresource,
            options={"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
        )
        mutated = await self.webhooks.mutate(attrs, obj, old_view)
        if mutated is not obj and mutated is not None:
            obj = mutated
            self._prune_and_default(rt, obj, call)
        obj = self._prepare_update(rt, obj, old, subresource)
        self._validate(rt, obj, old_view)
        check_escalation(self.authorizer, call.user, rt, obj, old)
        await self.webhooks.validate(attrs, obj, old_view)
        current = self.store.get(rt.key, old_meta.get("namespace", ""), name)
        if current is None:
            raise errors.not_found(rt.plural, rt.group, name)
        if current["metadata"]["resourceVersion"] != old_meta["resourceVersion"]:
            # Someone wrote while the webhooks were awaited: never overwrite that write.
            raise StaleBase()
        if obj == old and not call.dry_run:
            return self.present(rt, old)  # a no-op write keeps the resourceVersion, emits no event
        if call.dry_run:
            return self.present(rt, obj)
        stored = self.store.write(rt.key, obj, old=old)
        self._after_write(rt, stored, old)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            self.reaper.remove(rt, stored)
        return self.present(rt, stored)

    def _prepare_update(self, rt: ResourceType, obj: Obj, old: Obj, subresource: str) -> Obj:
        old_meta = old["metadata"]
        if subresource == "status":
            # Writes to /status change .status only; every other field comes from the stored object.
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            return new
        meta = obj["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if rt.key == NAMESPACES:
            obj["spec"] = copy.deepcopy(old.get("spec", {}))  # spec.finalizers change only through /finalize
        if rt.has_status:
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        if rt.tracks_generation and _content(obj, with_status=not rt.has_status) != _content(
            old, with_status=not rt.has_status
        ):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return obj

    # ---- delete ------------------------------------------------------------------------------------

    async def delete(
        self, call: Call, rt: ResourceType, namespace: str, name: str, options: Mapping[str, Any] | None
    ) -> tuple[Obj, bool]:
        """(object, still_there): the deleted object, or the object now pending its finalizers."""
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        options = dict(options or {})
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                f"{old['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {old['metadata']['resourceVersion']}",
            )
        options.setdefault("kind", "DeleteOptions")
        options.setdefault("apiVersion", "meta.k8s.io/v1")
        attrs = self._admission(rt, call, "DELETE", ns, name, options=options)
        view = self.present(rt, old)
        await self.webhooks.mutate(attrs, None, view)
        await self.webhooks.validate(attrs, None, view)
        if call.dry_run:
            return view, False
        # The webhooks were awaited: act on the object as it is now, not as it was read before
        # (the real server's GuaranteedUpdate), or a concurrent write would be lost.
        old = self.store.get(rt.key, ns, name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        propagation = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else ""
        )
        result = self.reaper.delete(rt, old, propagation)
        still = self.store.get(rt.key, ns, name)
        return self.present(rt, still if still is not None else result), still is not None

    # ---- type hooks --------------------------------------------------------------------------------

    def _after_write(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt.key == CRDS and not obj["metadata"].get("deletionTimestamp"):
            for served in self.registry.register_crd(obj):
                self._schemas.pop((served.group, served.version, served.plural), None)
        if obj["metadata"].get("ownerReferences") and not self._collect_through_admission(rt, obj):
            self.reaper.collect_if_orphaned(rt, obj)
        if rt.key == CLUSTER_ROLES:
            self._aggregate_cluster_roles()

    def _collect_through_admission(self, rt: ResourceType, obj: Obj) -> bool:
        """Upstream's garbage collector is a client of the API: its deletions pass admission as the
        collector. Where a webhook is called for deleting this orphaned object, the deletion goes that
        way too, a moment later, retried while refused; elsewhere collection stays synchronous (the
        cascade from a removed owner always does: no webhook of these tests watches its dependents)."""
        if not self.reaper.orphaned(obj):
            return False
        meta = obj["metadata"]
        namespace, name, uid = meta.get("namespace", ""), meta["name"], meta["uid"]
        attrs = AdmissionAttrs(
            rt=rt, subresource="", operation="DELETE", namespace=namespace, name=name, user=GARBAGE_COLLECTOR
        )
        if not self.webhooks.intercepts(attrs, obj):
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        task = loop.create_task(self._collect(rt, namespace, name, uid))
        self._collecting.add(task)
        task.add_done_callback(self._collecting.discard)
        return True

    async def _collect(self, rt: ResourceType, namespace: str, name: str, uid: str) -> None:
        options = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        for delay in _COLLECT_DELAYS:
            await asyncio.sleep(delay)
            current = self.store.get(rt.key, namespace, name)
            if current is None or current["metadata"]["uid"] != uid or not self.reaper.orphaned(current):
                return  # gone, replaced, or an owner is back: nothing to collect
            try:
                await self.delete(Call(user=GARBAGE_COLLECTOR), rt, namespace, name, options)
                return
            except ApiError:
                continue

    def _aggregate_cluster_roles(self) -> None:
        """The clusterrole-aggregation controller, run at once: each ClusterRole with an
        aggregationRule holds the rules of every ClusterRole its selectors match (to a fixed point,
        since view flows into edit and edit into admin)."""
        for _ in range(4):
            changed = False
            roles = self.store.objects(CLUSTER_ROLES)
            for role in roles:
                selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors")
                if not selectors:
                    continue
                rules: list[Any] = []
                for other in roles:
                    if other is role or other["metadata"]["name"] == role["metadata"]["name"]:
                        continue
                    labels = other["metadata"].get("labels") or {}
                    if any(_selects(sel, labels) for sel in selectors):
                        rules += [r for r in other.get("rules") or [] if r not in rules]
                if rules != (role.get("rules") or []):
                    updated = copy.deepcopy(role)
                    updated["rules"] = rules
                    self.store.write(CLUSTER_ROLES, updated, old=role)
                    changed = True
            if not changed:
                return


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    parsed = from_label_selector(selector)
    return parsed is not None and bool(parsed) and labels_match(parsed, labels)


def _decode_secret(obj: Obj) -> None:
    """As the v1 -> internal conversion: stringData is written into data, and data must be base64."""
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError as exc:
            raise errors.bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data.{key}'
            ) from exc
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def crd_status(crd: Mapping[str, Any], now: str) -> dict[str, Any]:
    spec = crd.get("spec") or {}
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": now,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": now,
        },
    ]
    stored = [v["name"] for v in spec.get("versions") or () if v.get("storage")]
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "conditions": conditions,
        "storedVersions": stored,
    }


def _patch_types(rt: ResourceType) -> list[str]:
    from .patching import APPLY, JSON_PATCH, MERGE

    return [JSON_PATCH, MERGE, APPLY] if rt.custom else [JSON_PATCH, MERGE, STRATEGIC, APPLY]


def patch_types(rt: ResourceType) -> list[str]:
    return _patch_types(rt)


__all__ = ["SYSTEM", "Api", "ApiError", "Call", "crd_status", "patch_types"]
