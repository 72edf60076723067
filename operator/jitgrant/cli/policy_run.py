"""Runs `jitgrant policy test|lint`, `who-can` and `exposure` (flags in policy.py): read, compute in
jitgrant.offline, print."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.offline import report
from jitgrant.offline.cases import run_tests
from jitgrant.offline.loader import ManifestError, Manifests, load


def _load(paths: list[str]) -> Manifests | None:
    try:
        return load(*(Path(p) for p in paths))
    except ManifestError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return None


def run_test(args: argparse.Namespace) -> int:
    manifests = _load(args.dir)
    if manifests is None:
        return int(ExitCode.USAGE)
    results, errors = run_tests(manifests)
    if not results and not errors:
        errors = [f"{', '.join(args.dir)}: no {'GrantPolicyTest'} documents found"]
    render = {"json": report.as_json, "junit": report.as_junit}.get(args.output, report.as_table)
    sys.stdout.write(render(results, errors))
    ok = all(r.passed for r in results) and not errors
    return int(ExitCode.OK if ok else ExitCode.CHECK_FAILED)
