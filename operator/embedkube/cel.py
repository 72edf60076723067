"""``x-kubernetes-validations`` rules evaluated with cel-python (celpy).

Rules see ``self`` (the value at their schema node) and, for transition rules, ``oldSelf``: a rule
that mentions ``oldSelf`` runs only on UPDATE and only where the old value exists, as documented.
Old values are correlated through object properties and map values; list items are not
correlated (the real server correlates only ``listType: map``/``set`` items).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from .errors import Cause

Schema = Mapping[str, Any]


# Kubernetes CEL extension libraries that celpy lacks (strings, lists, regex): the common subset.
def _lower(s: str) -> celtypes.StringType:
    return celtypes.StringType(s.lower())


def _upper(s: str) -> celtypes.StringType:
    return celtypes.StringType(s.upper())


def _trim(s: str) -> celtypes.StringType:
    return celtypes.StringType(s.strip())


def _replace(s: str, old: str, new: str, n: int = -1) -> celtypes.StringType:
    return celtypes.StringType(s.replace(old, new, int(n)))


def _split(s: str, sep: str) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in s.split(sep)])


def _join(items: list[Any], sep: str = "") -> celtypes.StringType:
    return celtypes.StringType(str(sep).join(str(i) for i in items))


def _index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.find(item))
    return celtypes.IntType(list(container).index(item) if item in container else -1)


def _last_index_of(container: Any, item: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.rfind(item))
    items = list(container)
    return celtypes.IntType(len(items) - 1 - items[::-1].index(item) if item in items else -1)


def _substring(s: str, start: int, end: int | None = None) -> celtypes.StringType:
    return celtypes.StringType(s[int(start) :] if end is None else s[int(start) : int(end)])


def _char_at(s: str, i: int) -> celtypes.StringType:
    return celtypes.StringType(s[int(i)] if int(i) < len(s) else "")


def _is_sorted(items: list[Any]) -> celtypes.BoolType:
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _sum(items: list[Any]) -> Any:
    return sum(items[1:], items[0]) if items else celtypes.IntType(0)


def _min(items: list[Any]) -> Any:
    return min(items)


def _max(items: list[Any]) -> Any:
    return max(items)


def _find(s: str, pattern: str) -> celtypes.StringType:
    m = re.search(pattern, s)
    return celtypes.StringType(m.group(0) if m else "")


def _find_all(s: str, pattern: str, n: int = -1) -> celtypes.ListType:
    found = [celtypes.StringType(m.group(0)) for m in re.finditer(pattern, s)]
    return celtypes.ListType(found if int(n) < 0 else found[: int(n)])


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _lower,
    "upperAscii": _upper,
    "trim": _trim,
    "replace": _replace,
    "split": _split,
    "join": _join,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "charAt": _char_at,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "find": _find,
    "findAll": _find_all,
}

_ENV = celpy.Environment()


@lru_cache(maxsize=512)
def compile_rule(text: str) -> Any:
    return _ENV.program(_ENV.compile(text), functions=FUNCTIONS)


def mentions_old_self(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def evaluate(rule: str, self_value: Any, old_value: Any = None, *, with_old: bool = False) -> Any:
    activation = {"self": json_to_cel(self_value)}
    if with_old:
        activation["oldSelf"] = json_to_cel(old_value)
    return compile_rule(rule).evaluate(activation)


_PREFIX = {
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


def _path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _run_rule(rule: Mapping[str, Any], value: Any, old: Any, has_old: bool, path: list[Any]) -> Cause | None:
    text = rule["rule"]
    transition = mentions_old_self(text)
    if transition and not has_old and not rule.get("optionalOldSelf"):
        return None
    field = _path(path) + (rule.get("fieldPath") or "")
    if field.startswith("."):
        field = field[1:]
    reason = rule.get("reason") or "FieldValueInvalid"
    try:
        result = evaluate(text, value, old, with_old=transition and has_old)
    except Exception as exc:  # evaluation errors refuse the object, as in the real server
        return Cause(field, "FieldValueInvalid", f'Invalid value: "object": {exc}')
    if isinstance(result, CELEvalError):
        return Cause(
            field,
            "FieldValueInvalid",
            f'Invalid value: "object": {result.args[0] if result.args else result}',
        )
    if bool(result):
        return None
    message = rule.get("message") or f"failed rule: {text}"
    if rule.get("messageExpression"):
        try:
            computed = evaluate(rule["messageExpression"], value, old, with_old=transition and has_old)
            if isinstance(computed, str) and computed.strip():
                message = str(computed)
        except Exception:  # noqa: S110 - documented fallback: message (or the rule) when the expression fails
            pass
    if reason in _PREFIX:
        return Cause(field, reason, f"{_PREFIX[reason]}: {message}")
    kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"
    shown = f'"{kind}"' if isinstance(value, dict | list) else repr(value).replace("'", '"')
    return Cause(field, reason, f"Invalid value: {shown}: {message}")


def check(
    value: Any, old: Any, schema: Schema, path: list[Any], *, has_old: bool | None = None
) -> list[Cause]:
    """All failing rules under ``schema`` for ``value`` (and ``old`` for transition rules)."""
    if has_old is None:
        has_old = old is not None
    # Validation ratcheting (KEP-4008, on by default since 1.30): a value an update leaves as it
    # was keeps passing even if a rule now fails on it, so only transition rules (oldSelf) are
    # evaluated there. It also spares a status write the spec's rules.
    unchanged = has_old and value == old
    causes: list[Cause] = []
    for rule in schema.get("x-kubernetes-validations") or ():
        if unchanged and not mentions_old_self(str(rule.get("rule", ""))):
            continue
        cause = _run_rule(rule, value, old, has_old, path)
        if cause is not None:
            causes.append(cause)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key) if key in props else additional if isinstance(additional, Mapping) else None
            if sub is None or (not path and key == "metadata"):
                continue
            old_has = has_old and isinstance(old, dict) and key in old
            causes.extend(check(item, old[key] if old_has else None, sub, [*path, key], has_old=old_has))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            causes.extend(check(item, None, schema["items"], [*path, i], has_old=False))
    return causes
