"""Label selectors (string and LabelSelector forms) and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects that lack the label, as documented.
        return not present or labels[self.key] not in self.values


Selector = tuple[Requirement, ...]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[A-Za-z0-9]?(?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


def parse_label_selector(text: str | None) -> Selector:
    """Parse ``a=b,c!=d,e in (f,g),!h,i`` into requirements; invalid text -> 400 BadRequest."""
    if not text:
        return ()
    out: list[Requirement] = []
    rest = text
    while rest.strip():
        m = _SET_RE.match(rest)
        if m:
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            if not all(_VALUE_RE.match(v) for v in values):
                raise bad_request(f"unable to parse requirement: invalid label value in {text!r}")
            out.append(Requirement(m.group(1), m.group(2), values))
        else:
            m = _EQ_RE.match(rest)
            if m:
                op = "!=" if m.group(2) == "!=" else "="
                out.append(Requirement(m.group(1), op, (m.group(3),)))
            else:
                m = _EXISTS_RE.match(rest)
                if not m or not m.group(2):
                    raise bad_request(
                        f"unable to parse requirement: found '{rest.strip()[:1]}', expected: identifier"
                    )
                out.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        rest = rest[m.end() :]
        if rest.strip():
            if not rest.lstrip().startswith(","):
                raise bad_request(f"unable to parse requirement: found '{rest.strip()[:1]}', expected: ','")
            rest = rest.lstrip()[1:]
    return tuple(out)


def from_label_selector(selector: Mapping[str, Any] | None) -> Selector | None:
    """A ``metav1.LabelSelector``; None selector means "nothing" where callers care, {} means everything."""
    if selector is None:
        return None
    out = [Requirement(k, "=", (str(v),)) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise ApiError(422, "Invalid", f"{expr.get('operator')!r} is not a valid label selector operator")
        out.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return tuple(out)


def labels_match(selector: Selector, labels: Mapping[str, str] | None) -> bool:
    return all(r.matches(labels or {}) for r in selector)


# ---- field selectors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str


FieldSelector = tuple[FieldRequirement, ...]

# Fields each type supports beyond metadata.name/metadata.namespace (the real types' field label
# conversion functions); anything else is refused as the real server does.
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "pods": ("spec.nodeName", "spec.serviceAccountName", "status.phase", "spec.restartPolicy"),
    "secrets": ("type",),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "regarding.name",
        "regarding.kind",
        "regarding.namespace",
        "regarding.uid",
    ),
    "namespaces": ("status.phase",),
}


def parse_field_selector(text: str | None, plural: str) -> FieldSelector:
    if not text:
        return ()
    allowed = ("metadata.name", "metadata.namespace", *EXTRA_FIELDS.get(plural, ()))
    out: list[FieldRequirement] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            name, value = part.split("!=", 1)
            negate = True
        elif "==" in part:
            name, value = part.split("==", 1)
            negate = False
        elif "=" in part:
            name, value = part.split("=", 1)
            negate = False
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name = name.strip()
        if name not in allowed:
            raise bad_request(f"field label not supported: {name}")
        out.append(FieldRequirement(name, negate, value.strip()))
    return tuple(out)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, Mapping):
        return str(cur.get("component", ""))  # events' "source" field selects on source.component
    return str(cur)


def fields_match(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    return all((_field_value(obj, r.field) == r.value) != r.negate for r in selector)


def selected_name(selector: FieldSelector) -> str:
    """The name a list/watch is narrowed to by ``metadata.name=X``: RBAC resourceNames can allow it."""
    names = [r.value for r in selector if r.field == "metadata.name" and not r.negate]
    return names[0] if len(names) == 1 else ""


def describe(selector: Sequence[Requirement]) -> str:
    parts = []
    for r in selector:
        if r.op in ("=", "!="):
            parts.append(f"{r.key}{r.op}{r.values[0]}")
        elif r.op in ("in", "notin"):
            parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        else:
            parts.append(("!" if r.op == "!" else "") + r.key)
    return ",".join(parts)
