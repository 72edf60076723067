"""`policy test` results as a table, JSON or JUnit XML (for CI systems)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from jitgrant.models import format_duration
from jitgrant.models.text import visible
from jitgrant.offline.cases import CaseResult


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
