"""`policy test` results as a table, JSON or JUnit XML (for CI systems)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from jitgrant.models import format_duration
from jitgrant.models.text import visible
from jitgrant.offline.cases import CaseResult
from jitgrant.offline.exposure import Held, Route, rules_text


def result_dict(result: CaseResult) -> dict[str, Any]:
    answer = result.answer
    return {
        "file": str(result.path),
        "case": result.case.name,
        "passed": result.passed,
        "expected": result.case.expect.model_dump(mode="json", by_alias=True, exclude_none=True),
        "actual": {
            "outcome": str(answer.outcome),
            "reason": answer.reason,
            "message": answer.message,
            "duration": format_duration(answer.duration) if answer.duration is not None else None,
            "approvals": answer.approvals,
            "approverGroups": list(answer.approver_groups),
            "approverUsers": list(answer.approver_users),
        },
        "mismatches": list(result.mismatches),
    }


def as_json(results: Sequence[CaseResult], errors: Sequence[str]) -> str:
    passed = sum(r.passed for r in results)
    summary = {
        "cases": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "errors": len(errors),
    }
    document = {"summary": summary, "results": [result_dict(r) for r in results], "errors": list(errors)}
    return json.dumps(document, indent=2) + "\n"


def as_table(results: Sequence[CaseResult], errors: Sequence[str]) -> str:
    rows = [("RESULT", "FILE", "CASE", "OUTCOME", "REASON")]
    rows += [
        (
            "PASS" if r.passed else "FAIL",
            str(r.path),
            visible(r.case.name),
            str(r.answer.outcome),
            r.answer.reason,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in results:
        if not r.passed:
            lines.append(f"\nFAIL {r.path}: {visible(r.case.name)}")
            lines += [f"  {visible(m)}" for m in r.mismatches]
            lines.append(f"  actual: {r.answer.outcome} ({r.answer.reason}): {visible(r.answer.message)}")
    lines += [f"\nERROR {visible(e)}" for e in errors]
    passed = sum(r.passed for r in results)
    lines.append(f"\n{passed} of {len(results)} case(s) passed, {len(errors)} file error(s)")
    return "\n".join(lines) + "\n"


def as_junit(results: Sequence[CaseResult], errors: Sequence[str]) -> str:
    failures = sum(not r.passed for r in results)
    suites = ET.Element("testsuites", name="jitgrant policy test")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="jitgrant policy test",
        tests=str(len(results) + len(errors)),
        failures=str(failures),
        errors=str(len(errors)),
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=str(r.path), name=r.case.name)
        if not r.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(r.mismatches))
            failure.text = f"actual: {r.answer.outcome} ({r.answer.reason}): {r.answer.message}"
    for error in errors:
        case = ET.SubElement(suite, "testcase", classname="files", name=error.split(":", 1)[0])
        ET.SubElement(case, "error", message=error)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def route_dict(route: Route) -> dict[str, Any]:
    return {
        "identity": route.identity.label,
        "kind": str(route.identity.kind),
        "policy": route.policy,
        "grant": route.grant,
        "rules": [rule.to_k8s() for rule in route.rules] if route.rules is not None else None,
        "namespaces": list(route.namespaces),
        "approval": {"needed": route.approvals, "from": list(route.approvers)},
        "maxDuration": route.max_duration,
        "dangerous": list(route.dangerous),
    }


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def who_can_table(found: Sequence[Route]) -> str:
    if not found:
        return "no identity could obtain this through any policy on file\n"
    rows = [("IDENTITY", "POLICY", "GRANT", "NAMESPACES", "APPROVAL", "MAX")]
    rows += [
        (r.identity.label, r.policy, r.grant, ",".join(r.namespaces), r.approval_text, r.max_duration)
        for r in found
    ]
    return _table(rows)


def _by_identity(found: Sequence[Route]) -> dict[str, list[Route]]:
    grouped: dict[str, list[Route]] = {}
    for route in found:
        grouped.setdefault(route.identity.label, []).append(route)
    return grouped


def _held_by(held: Sequence[Held]) -> dict[str, list[Held]]:
    grouped: dict[str, list[Held]] = {}
    for item in held:
        grouped.setdefault(item.requester, []).append(item)
    return grouped


def _held_text(item: Held) -> str:
    return f"{item.scope} via policy {item.policy} ({item.request}) until {item.expires_at}"


def exposure_json(found: Sequence[Route], held: Sequence[Held] = ()) -> str:
    now = _held_by(held)
    labels = list(dict.fromkeys([*_by_identity(found), *now]))
    routes_by = _by_identity(found)
    document = [
        {
            "identity": label,
            "automatically": [route_dict(r) for r in routes_by.get(label, []) if not r.approvals],
            "withApproval": [route_dict(r) for r in routes_by.get(label, []) if r.approvals],
            "activeNow": [item.__dict__ for item in now.get(label, [])],
        }
        for label in labels
    ]
    return json.dumps({"identities": document}, indent=2) + "\n"


def _route_line(route: Route) -> str:
    danger = f"  DANGEROUS: {', '.join(route.dangerous)}" if route.dangerous else ""
    approval = f"; approval {route.approval_text}" if route.approvals else ""
    return (
        f"{route.grant} via policy {route.policy} in {','.join(route.namespaces)} for up to "
        f"{route.max_duration}{approval}: {rules_text(route.rules)}{danger}"
    )


def exposure_table(found: Sequence[Route], held: Sequence[Held] = ()) -> str:
    lines = []
    now = _held_by(held)
    routes_by = _by_identity(found)
    for label in dict.fromkeys([*routes_by, *now]):
        items = routes_by.get(label, [])
        lines.append(label)
        for title, chosen in (
            ("automatically", [r for r in items if not r.approvals]),
            ("with approval", [r for r in items if r.approvals]),
        ):
            lines.append(f"  {title}:" + ("" if chosen else " nothing"))
            lines += [f"    {_route_line(r)}" for r in chosen]
        lines.append("  active now:" + ("" if now.get(label) else " nothing"))
        lines += [f"    {_held_text(item)}" for item in now.get(label, [])]
    return "\n".join(lines) + "\n" if lines else "no identity is named by any policy on file\n"


def exposure_markdown(found: Sequence[Route], held: Sequence[Held] = ()) -> str:
    lines = ["# Access exposure through GrantPolicies", ""]
    lines.append("What each identity could obtain through jitgrant; dangerous permissions are in **bold**.")
    now = _held_by(held)
    routes_by = _by_identity(found)
    for label in dict.fromkeys([*routes_by, *now]):
        items = routes_by.get(label, [])
        safe = label.replace("`", "'")
        lines += ["", f"## `{safe}`", ""]
        lines += [
            "| How | Policy | Grant | Namespaces | Max | Permissions | Dangerous |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in sorted(items, key=lambda r: r.approvals):
            how = "automatically" if not r.approvals else f"approval: {r.approval_text}"
            danger = f"**{', '.join(r.dangerous)}**" if r.dangerous else ""
            cells = [
                how,
                r.policy,
                r.grant,
                ", ".join(r.namespaces),
                r.max_duration,
                rules_text(r.rules),
                danger,
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if now.get(label):
            lines += ["", "Active now:", ""] + [f"- {_held_text(item)}" for item in now[label]]
    return "\n".join(lines) + "\n"


def diff_table(added: Sequence[Route], removed: Sequence[Route]) -> str:
    if not added and not removed:
        return "no route changes: the same identities can obtain the same access the same way\n"
    lines = [f"+ {r.identity.label}: {_route_line(r)}" for r in added]
    lines += [f"- {r.identity.label}: {_route_line(r)}" for r in removed]
    lines.append(f"{len(added)} route(s) added, {len(removed)} removed")
    return "\n".join(lines) + "\n"
