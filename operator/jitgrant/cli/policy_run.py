"""Runs `jitgrant policy test|lint`, `who-can` and `exposure` (flags in policy.py): read, compute in
jitgrant.offline, print."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.models.text import visible
from jitgrant.offline import report
from jitgrant.offline.cases import run_tests
from jitgrant.offline.exposure import active_grants, diff_routes, routes, who_can
from jitgrant.offline.lint import Level, lint
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


def run_lint(args: argparse.Namespace) -> int:
    manifests = _load(args.dir)
    if manifests is None:
        return int(ExitCode.USAGE)
    findings = lint(manifests)
    if args.output == "json":
        rows = [
            {
                "file": str(f.path or ""),
                "policy": f.policy,
                "level": str(f.level),
                "field": f.field,
                "message": f.message,
            }
            for f in findings
        ]
        sys.stdout.write(json.dumps({"policies": len(manifests.policies), "findings": rows}, indent=2) + "\n")
    else:
        for f in findings:
            where = f"{f.path}: " if f.path else ""
            policy = f"GrantPolicy {f.policy}: " if f.policy else ""
            sys.stdout.write(f"{f.level.upper()} {where}{policy}{f.field}: {visible(f.message)}\n")
        errors = sum(f.level is Level.ERROR for f in findings)
        sys.stdout.write(
            f"{len(manifests.policies)} policies: {errors} error(s), {len(findings) - errors} warning(s)\n"
        )
    failing = [f for f in findings if f.level is Level.ERROR or args.strict]
    return int(ExitCode.CHECK_FAILED if failing else ExitCode.OK)


def _from_sources(
    args: argparse.Namespace,
    render: Callable[[argparse.Namespace, Manifests], int],
    *,
    requests: bool = False,
) -> int:
    """Files with -f; otherwise the cluster the kubeconfig names."""
    if not args.sources:
        from jitgrant.cli.policy_cluster import from_cluster  # the Kubernetes client, only when needed

        return from_cluster(render, requests=requests)(args)
    manifests = _load(args.sources)
    if manifests is None:
        return int(ExitCode.USAGE)
    return render(args, manifests)


def _who_can(args: argparse.Namespace, manifests: Manifests) -> int:
    for error in manifests.errors:
        sys.stderr.write(f"warning: {error}\n")
    found = who_can(
        manifests, verb=args.verb, resource=args.resource, namespace=args.namespace, name=args.name
    )
    if args.output == "json":
        sys.stdout.write(json.dumps({"routes": [report.route_dict(r) for r in found]}, indent=2) + "\n")
    else:
        sys.stdout.write(report.who_can_table(found))
    return int(ExitCode.OK)


def _exposure(args: argparse.Namespace, manifests: Manifests) -> int:
    for error in manifests.errors:
        sys.stderr.write(f"warning: {error}\n")
    found = routes(manifests, only=args.identity)
    held = active_grants(manifests, only=args.identity)
    render = {"json": report.exposure_json, "markdown": report.exposure_markdown}.get(
        args.output, report.exposure_table
    )
    sys.stdout.write(render(found, held))
    return int(ExitCode.OK)


def run_who_can(args: argparse.Namespace) -> int:
    return _from_sources(args, _who_can)


def run_exposure(args: argparse.Namespace) -> int:
    return _from_sources(args, _exposure, requests=True)


def run_diff(args: argparse.Namespace) -> int:
    old, new = _load([args.old]), _load([args.new])
    if old is None or new is None:
        return int(ExitCode.USAGE)
    for error in [*old.errors, *new.errors]:
        sys.stderr.write(f"warning: {error}\n")
    added, removed = diff_routes(old, new)
    if args.output == "json":
        document = {
            "added": [report.route_dict(r) for r in added],
            "removed": [report.route_dict(r) for r in removed],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(report.diff_table(added, removed))
    return int(ExitCode.OK)
