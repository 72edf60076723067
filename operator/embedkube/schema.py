"""Custom resource schemas: pruning, defaulting, OpenAPI v3 validation and CEL validation rules.

A structural ``openAPIV3Schema`` is turned into a draft-4 JSON schema for the value checks (the
OpenAPI 3.0 keywords are draft-4 ones: boolean ``exclusiveMinimum``, ``nullable`` becomes a "null"
type). ``x-kubernetes-*`` extensions are handled here, outside jsonschema: pruning honours
``x-kubernetes-preserve-unknown-fields`` and ``x-kubernetes-embedded-resource``,
``x-kubernetes-int-or-string`` allows both types, and ``x-kubernetes-validations`` rules run in CEL.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from . import cel
from .errors import Cause, invalid_value

Schema = Mapping[str, Any]
_VALUE_KEYWORDS = (
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "required",
)


def to_json_schema(schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {k: copy.deepcopy(schema[k]) for k in _VALUE_KEYWORDS if k in schema}
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string", "null"] if schema.get("nullable") else ["integer", "string"]
    elif "type" in schema:
        out["type"] = [schema["type"], "null"] if schema.get("nullable") else schema["type"]
    if "properties" in schema:
        out["properties"] = {k: to_json_schema(v) for k, v in schema["properties"].items()}
    additional = schema.get("additionalProperties")
    if isinstance(additional, Mapping):
        out["additionalProperties"] = to_json_schema(additional)
    elif additional is False:
        out["additionalProperties"] = False
    if isinstance(schema.get("items"), Mapping):
        out["items"] = to_json_schema(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [to_json_schema(s) for s in schema[key]]
    if "not" in schema:
        out["not"] = to_json_schema(schema["not"])
    if "enum" in out and schema.get("nullable"):
        out["enum"] = [*out["enum"], None]
    return out


def field_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _cause(error: jsonschema.ValidationError) -> Cause:
    path = field_path(list(error.absolute_path))
    value, kw = error.instance, error.validator
    expected = error.validator_value
    if kw == "required":
        missing = str(error.message).split("'")[1] if "'" in str(error.message) else ""
        return Cause(field_path([*error.absolute_path, missing]), "FieldValueRequired", "Required value")
    if kw == "type":
        want = expected if isinstance(expected, str) else expected[0]
        return Cause(
            path,
            "FieldValueTypeInvalid",
            f'Invalid value: "{_type_name(value)}": {path} in body must be of type {want}: '
            f'"{_type_name(value)}"',
        )
    if kw == "enum":
        supported = ", ".join(invalid_value(v) for v in expected)
        return Cause(
            path,
            "FieldValueNotSupported",
            f"Unsupported value: {invalid_value(value)}: supported values: {supported}",
        )
    messages = {
        "pattern": f"{path} in body should match '{expected}'",
        "minLength": f"{path} in body should be at least {expected} chars long",
        "maxLength": f"Too long: may not be more than {expected} bytes",
        "minimum": f"{path} in body should be greater than or equal to {expected}",
        "maximum": f"{path} in body should be less than or equal to {expected}",
        "minItems": f"{path} in body should have at least {expected} items",
        "maxItems": f"Too many: {len(value) if isinstance(value, list) else '?'}: "
        f"must have at most {expected} items",
        "uniqueItems": f"Duplicate value: {path} in body shouldn't contain duplicates",
        "additionalProperties": f"{path} in body is a forbidden property",
    }
    message = messages.get(str(kw), str(error.message))
    if not message.startswith(("Too", "Duplicate")):
        message = f"Invalid value: {invalid_value(value)}: {message}"
    return Cause(path, "FieldValueInvalid", message)


@dataclass
class CrdSchema:
    """The compiled schema of one served version of a custom resource."""

    schema: Schema

    def __post_init__(self) -> None:
        self._validator = jsonschema.Draft4Validator(to_json_schema(self.schema))

    # ---- pruning and defaulting -----------------------------------------------------------------

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop fields the schema does not declare; returns their paths (for Warning/Strict)."""
        pruned: list[str] = []
        for key in list(obj):
            if key in ("apiVersion", "kind", "metadata"):
                continue
            props = self.schema.get("properties") or {}
            if key in props:
                obj[key] = _prune(obj[key], props[key], [key], pruned)
            elif not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                pruned.append(key)
                del obj[key]
        return pruned

    def default(self, obj: dict[str, Any]) -> None:
        _default(obj, self.schema, root=True)

    # ---- validation -----------------------------------------------------------------------------

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        causes = [
            _cause(e) for e in sorted(self._validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        ]
        if causes:  # CEL rules assume a value of the declared shape
            return causes
        old_body = None if old is None else {k: v for k, v in old.items() if k not in ("apiVersion", "kind")}
        causes.extend(cel.check(dict(obj), old_body, self.schema, []))
        return causes


def _prune(value: Any, schema: Schema, path: list[Any], pruned: list[str]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            if props is not None and key in props:
                value[key] = _prune(value[key], props[key], [*path, key], pruned)
            elif isinstance(additional, Mapping):
                value[key] = _prune(value[key], additional, [*path, key], pruned)
            elif preserve or additional is True or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            else:
                pruned.append(field_path([*path, key]))
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_prune(item, schema["items"], [*path, i], pruned) for i, item in enumerate(value)]
    return value


def _default(value: Any, schema: Schema, *, root: bool = False) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if root and key == "metadata":
                continue
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            for item in value.values():
                _default(item, additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _default(item, schema["items"])
