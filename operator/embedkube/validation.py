"""Validation of built-in objects: names and the few type rules the tests and the operator meet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import Cause, invalid_value
from .resources import LABEL, PATH_SEGMENT, ResourceType

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def name_causes(rt: ResourceType, name: str, field: str = "metadata.name") -> list[Cause]:
    if rt.name_rule == PATH_SEGMENT:
        if name in (".", ".."):
            return [
                Cause(
                    field, "FieldValueInvalid", f"Invalid value: {invalid_value(name)}: may not be '{name}'"
                )
            ]
        for bad in ("/", "%"):
            if bad in name:
                return [
                    Cause(
                        field,
                        "FieldValueInvalid",
                        f"Invalid value: {invalid_value(name)}: may not contain '{bad}'",
                    )
                ]
        return []
    if rt.name_rule == LABEL:
        if len(name) > 63 or not _LABEL.match(name):
            return [Cause(field, "FieldValueInvalid", f"Invalid value: {invalid_value(name)}: {LABEL_MSG}")]
        return []
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [Cause(field, "FieldValueInvalid", f"Invalid value: {invalid_value(name)}: {SUBDOMAIN_MSG}")]
    return []


def metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, short = key.rpartition("/")
        if (
            not short
            or len(short) > 63
            or not _QUALIFIED.match(short)
            or (prefix and not _SUBDOMAIN.match(prefix))
        ):
            causes.append(
                Cause(
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {invalid_value(key)}: name part must consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                Cause(
                    "metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {invalid_value(value)}: a valid label must be an empty string or "
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                    "an alphanumeric character",
                )
            )
    for value in (meta.get("annotations") or {}).values():
        if not isinstance(value, str):
            causes.append(
                Cause(
                    "metadata.annotations",
                    "FieldValueInvalid",
                    f"Invalid value: {invalid_value(value)}: annotation values must be strings",
                )
            )
    return causes


def _rules_causes(rules: Any, field: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules or ()):
        path = f"{field}[{i}]"
        if not rule.get("verbs"):
            causes.append(
                Cause(
                    f"{path}.verbs",
                    "FieldValueRequired",
                    "Required value: verbs must contain at least one value",
                )
            )
        if rule.get("nonResourceURLs") and (rule.get("resources") or rule.get("apiGroups")):
            causes.append(
                Cause(
                    f"{path}.nonResourceURLs",
                    "FieldValueInvalid",
                    "Invalid value: []string(nil): rules cannot apply to both regular resources and "
                    "non-resource URLs",
                )
            )
        if not rule.get("nonResourceURLs") and not rule.get("resources"):
            causes.append(
                Cause(
                    f"{path}.resources",
                    "FieldValueRequired",
                    "Required value: resource rules must supply at least one resource",
                )
            )
        if rule.get("resources") and "apiGroups" not in rule:
            causes.append(
                Cause(
                    f"{path}.apiGroups",
                    "FieldValueRequired",
                    "Required value: resource rules must supply at least one api group",
                )
            )
    return causes


def _binding_causes(obj: Mapping[str, Any], old: Mapping[str, Any] | None, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    ref = obj.get("roleRef") or {}
    allowed = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in allowed:
        causes.append(
            Cause(
                "roleRef.kind",
                "FieldValueNotSupported",
                f"Unsupported value: {invalid_value(ref.get('kind', ''))}: supported values: "
                + ", ".join(f'"{k}"' for k in allowed),
            )
        )
    if not ref.get("name"):
        causes.append(Cause("roleRef.name", "FieldValueRequired", "Required value"))
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        causes.append(
            Cause(
                "roleRef.apiGroup",
                "FieldValueNotSupported",
                f"Unsupported value: {invalid_value(ref.get('apiGroup', ''))}: supported values: "
                '"rbac.authorization.k8s.io"',
            )
        )
    if old is not None and old.get("roleRef") != obj.get("roleRef"):
        causes.append(
            Cause(
                "roleRef", "FieldValueInvalid", f"Invalid value: {invalid_value(ref)}: cannot change roleRef"
            )
        )
    for i, subject in enumerate(obj.get("subjects") or ()):
        kind = subject.get("kind")
        if kind not in ("User", "Group", "ServiceAccount"):
            causes.append(
                Cause(
                    f"subjects[{i}].kind",
                    "FieldValueNotSupported",
                    f'Unsupported value: {invalid_value(kind)}: supported values: "ServiceAccount", '
                    '"User", "Group"',
                )
            )
        if not subject.get("name"):
            causes.append(Cause(f"subjects[{i}].name", "FieldValueRequired", "Required value"))
        if kind == "ServiceAccount" and not namespaced and not subject.get("namespace"):
            causes.append(Cause(f"subjects[{i}].namespace", "FieldValueRequired", "Required value"))
    return causes


def type_causes(rt: ResourceType, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    """Type-specific rules of the built-in types that matter to RBAC and admission users."""
    if rt.group == "rbac.authorization.k8s.io":
        if rt.plural in ("roles", "clusterroles"):
            return _rules_causes(obj.get("rules"), "rules")
        return _binding_causes(obj, old, rt.plural == "rolebindings")
    if rt.plural == "customresourcedefinitions":
        return _crd_causes(obj)
    if rt.group == "" and rt.plural in ("configmaps", "secrets") and old is not None and old.get("immutable"):
        return _immutable_causes(obj, old)
    return []


def _immutable_causes(obj: Mapping[str, Any], old: Mapping[str, Any]) -> list[Cause]:
    message = "Forbidden: field is immutable when `immutable` is set"
    causes = [
        Cause(f, "FieldValueForbidden", message) for f in ("data", "binaryData") if obj.get(f) != old.get(f)
    ]
    if not obj.get("immutable"):
        causes.append(Cause("immutable", "FieldValueForbidden", message))
    return causes


def _crd_causes(obj: Mapping[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    for field in ("group", "scope"):
        if not spec.get(field):
            causes.append(Cause(f"spec.{field}", "FieldValueRequired", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(Cause(f"spec.names.{field}", "FieldValueRequired", "Required value"))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if obj["metadata"].get("name") != expected:
        causes.append(
            Cause(
                "metadata.name",
                "FieldValueInvalid",
                f"Invalid value: {invalid_value(obj['metadata'].get('name'))}: "
                'must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            Cause(
                "spec.versions",
                "FieldValueInvalid",
                'Invalid value: "array": must have exactly one version marked as storage version',
            )
        )
    return causes
