"""`-o json|yaml|wide|name|jsonpath=...` for every read command, with kubectl's shapes.

A list prints as `kind: List` (what `kubectl get -o json` prints, so `jq .items[]` and
`kubectl apply -f` read it); `-o name` prints `accessrequest.jitgrant.dev/NAME`; `jsonpath=` takes
kubectl's template syntax: `{.a.b}`, `[n]`, `[*]`, `{range ...}{end}` and quoted literals.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.kubeconfig import CliError

FORMATS = ("table", "wide", "json", "yaml", "name", "jsonpath=TEMPLATE", "custom-columns=SPEC")
_COLUMN = re.compile(r"[^:,]+:[^,]*")


def output_format(text: str) -> str:
    """argparse type for -o: a known format, jsonpath=<template> or custom-columns=<HEADER:path,...>;
    the error names the value and lists what is accepted."""
    if text.startswith("custom-columns="):
        spec = text.partition("=")[2]
        if not spec or not all(_COLUMN.fullmatch(part) for part in spec.split(",")):
            raise argparse.ArgumentTypeError(
                f"-o {text!r}: custom-columns takes HEADER:JSONPATH pairs separated by commas, e.g. "
                "-o custom-columns=NAME:.metadata.name,PHASE:.status.phase"
            )
        return text
    if text in FORMATS[:5] or text.startswith(("jsonpath=", "jsonpath-as-json=")):
        if text.startswith("jsonpath") and not text.partition("=")[2]:
            raise argparse.ArgumentTypeError("jsonpath= needs a template, e.g. -o jsonpath='{.status.phase}'")
        return text
    raise argparse.ArgumentTypeError(f"unknown output format {text!r} (allowed: {', '.join(FORMATS)})")


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=output_format,
        default="table",
        metavar="FORMAT",
        help=f"one of: {', '.join(FORMATS)}",
    )


def as_list(items: Sequence[Mapping[str, Any]], *, resource_version: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": resource_version},
        "items": list(items),
    }


def object_name(obj: Mapping[str, Any]) -> str:
    kind = str(obj.get("kind") or "AccessRequest").lower()
    group = str(obj.get("apiVersion") or "jitgrant.dev/v1alpha1").partition("/")[0]
    return f"{kind}.{group}/{(obj.get('metadata') or {}).get('name', '')}"


def render_structured(data: Any, fmt: str) -> str | None:
    """json/yaml/name/jsonpath output of an object or a `kind: List`; None for table formats."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    if fmt == "name":
        items = data.get("items", []) if data.get("kind") == "List" else [data]
        return "".join(object_name(item) + "\n" for item in items)
    if fmt.startswith("jsonpath-as-json="):
        return (
            json.dumps(list(_evaluate(_parse_path(fmt.partition("=")[2].strip("{}")), data)), indent=2) + "\n"
        )
    if fmt.startswith("jsonpath="):
        return jsonpath(fmt.partition("=")[2], data)
    return None


def custom_columns(spec: str, items: Sequence[Mapping[str, Any]], *, header: bool = True) -> str:
    """kubectl's -o custom-columns: one column per HEADER:path, `<none>` where the path finds nothing."""
    columns = [part.split(":", 1) for part in spec.split(",")]
    rows = [[title for title, _ in columns]] if header else []
    for item in items:
        cells = []
        for _, path in columns:
            found = list(_evaluate(_parse_path(path.strip().strip("{}")), item))
            cells.append(",".join(_text(value) for value in found) if found else "<none>")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))] if rows else []
    return "".join(
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows
    )


# ---- kubectl's jsonpath templates ----------------------------------------------------------------------

_TOKEN = re.compile(r"\{((?:[^{}\"']|\"[^\"]*\"|'[^']*')*)\}")
_STEP = re.compile(r"\.\.?([A-Za-z0-9_\-/]+|\*)|\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]")


def _literal(text: str) -> str | None:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].encode().decode("unicode_escape")
    return None


def _parse_path(expr: str) -> list[tuple[str, str]]:
    expr = expr.strip()
    if expr in ("", "."):
        return []
    steps: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _STEP.match(expr, pos)
        if not match:
            raise CliError(
                f"jsonpath: cannot parse {expr!r} at {expr[pos:]!r}; expected fields like "
                "{.metadata.name}, indexes like [0] or [*]",
                ExitCode.USAGE,
            )
        if match.group(1) is not None:
            recursive = match.group(0).startswith("..")
            steps.append(("recurse" if recursive else "field", match.group(1)))
        else:
            steps.append(("index", match.group(2).strip("'\"")))
        pos = match.end()
    return steps


def _descendants(value: Any) -> Iterator[Any]:
    yield value
    children = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
    for child in children:
        yield from _descendants(child)


def _evaluate(steps: list[tuple[str, str]], root: Any) -> Iterator[Any]:
    values: list[Any] = [root]
    for kind, arg in steps:
        nxt: list[Any] = []
        for value in values:
            if kind == "recurse":
                for node in _descendants(value):
                    if isinstance(node, Mapping) and arg in node:
                        nxt.append(node[arg])
            elif arg == "*":
                nxt.extend(
                    value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else []
                )
            elif kind == "field" or not arg.lstrip("-").isdigit():
                if isinstance(value, Mapping) and arg in value:
                    nxt.append(value[arg])
            elif isinstance(value, list) and -len(value) <= int(arg) < len(value):
                nxt.append(value[int(arg)])
        values = nxt
    yield from values


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list)):
        return json.dumps(value)
    return str(value)


def jsonpath(template: str, data: Any) -> str:
    """Render a kubectl jsonpath template against `data`."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            parts.append(("text", template[pos : match.start()]))
        parts.append(("expr", match.group(1)))
        pos = match.end()
    if pos < len(template):
        parts.append(("text", template[pos:]))
    if not any(kind == "expr" for kind, _ in parts):
        parts = [("expr", template)]  # kubectl accepts a bare path: -o jsonpath=.status.phase
    out, _ = _render(parts, 0, data)
    return out


def _render(parts: list[tuple[str, str]], start: int, data: Any) -> tuple[str, int]:
    out: list[str] = []
    i = start
    while i < len(parts):
        kind, text = parts[i]
        stripped = text.strip()
        if kind == "text":
            out.append(text)
        elif stripped == "end":
            return "".join(out), i
        elif stripped.startswith("range "):
            items = list(_evaluate(_parse_path(stripped[len("range ") :]), data))
            end = i
            for item in items:
                chunk, end = _render(parts, i + 1, item)
                out.append(chunk)
            if not items:
                _, end = _render(parts, i + 1, {})
            i = end
        elif (literal := _literal(stripped)) is not None:
            out.append(literal)
        else:
            out.append(" ".join(_text(value) for value in _evaluate(_parse_path(stripped), data)))
        i += 1
    return "".join(out), i
