"""Discovery documents (/api, /apis, APIResourceList), /version and kubectl's Table output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .clock import parse_rfc3339
from .resources import SUBRESOURCE_KIND, SUBRESOURCE_VERBS, ResourceRegistry, ResourceType

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+jitgrant.embedded",
    "gitCommit": "embedded",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: Sequence[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: ResourceRegistry, group: str) -> dict[str, Any] | None:
    versions = registry.groups().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    if not registry.has_group_version(group, version):
        return None
    resources: list[dict[str, Any]] = []
    for rt in registry.resources(group, version):
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
            }
            if (rt.plural, sub) in SUBRESOURCE_KIND:
                g, v, k = SUBRESOURCE_KIND[(rt.plural, sub)]
                sub_entry.update(group=g, version=v, kind=k)
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# ---- Table (kubectl get) -----------------------------------------------------------------------------


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "<unknown>"
    try:
        delta = (now - parse_rfc3339(created)).total_seconds()
    except ValueError:
        return "<unknown>"
    if delta < -1:  # apimachinery's HumanDuration of a negative duration
        return "<invalid>"
    seconds = int(delta)
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _json_path(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        else:
            return None
    return cur


_BUILTIN_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "namespaces": [("Status", ".status.phase")],
    "pods": [("Status", ".status.phase")],
    "deployments": [("Replicas", ".spec.replicas")],
    "secrets": [("Type", ".type")],
    "rolebindings": [("Role", ".roleRef.name")],
    "clusterrolebindings": [("Role", ".roleRef.name")],
}


def table(
    rt: ResourceType, items: Sequence[Mapping[str, Any]], resource_version: str, now: datetime
) -> dict[str, Any]:
    columns: list[tuple[str, str, str, int]] = [("Name", "string", "", 0)]
    extra: list[tuple[str, str, str]] = []
    if rt.custom:
        # As apiextensions' table convertor: a CRD's own columns replace the default Age; without
        # any, the columns are Name and Age (a date column of creationTimestamp).
        printer = rt.printer_columns or (
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        )
        for col in printer:
            extra.append((col["name"], col["jsonPath"], col.get("type", "string")))
            priority = col.get("priority", 0)  # 1: only with `kubectl get -o wide`
            columns.append((col["name"], col.get("type", "string"), col.get("jsonPath", ""), priority))
    else:
        for name, path in _BUILTIN_COLUMNS.get(rt.plural, []):
            extra.append((name, path, "string"))
            columns.append((name, "string", path, 0))
    has_age = not rt.custom and not any(name == "Age" for name, _, _ in extra)
    if has_age:
        columns.append(("Age", "string", "", 0))
    rows = []
    for obj in items:
        meta = obj.get("metadata") or {}
        cells: list[Any] = [meta.get("name")]
        for name, path, kind in extra:
            value = _json_path(obj, path)
            if (kind == "date" or name == "Age") and isinstance(value, str):
                # The server renders dates as a duration since then (HumanDuration): a time in the
                # future comes out as <invalid>, which is why jitgrant's Expires is a string column.
                value = _age(value, now)
            cells.append("<none>" if value is None else value)
        if has_age:
            cells.append(_age(meta.get("creationTimestamp"), now))
        rows.append(
            {
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta},
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": n, "type": t, "format": "name" if n == "Name" else "", "description": d, "priority": p}
            for n, t, d, p in columns
        ],
        "rows": rows,
    }


# ---- OpenAPI v3 (only what kubectl needs to choose server-side field validation) -------------------------


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_root(registry: ResourceRegistry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
    return {"paths": paths}


def openapi_group_version(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """PATCH operations that declare ``fieldValidation``: kubectl then validates on the server."""
    if not registry.has_group_version(group, version):
        return None
    param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    paths: dict[str, Any] = {}
    for rt in registry.resources(group, version):
        if "patch" not in rt.verbs:
            continue
        scope = "namespaces/{namespace}/" if rt.namespaced else ""
        gvk = {"group": group, "version": version, "kind": rt.kind}
        paths[f"/{_gv_path(group, version)}/{scope}{rt.plural}/{{name}}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [param],
                "operationId": f"patch{rt.kind}",
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
