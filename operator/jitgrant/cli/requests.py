"""`jitgrant get|list|approve|deny|revoke`: people's view of AccessRequests."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from jitgrant.approvals.receipts import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    DENY_ANNOTATION,
    parse_recorded,
)
from jitgrant.clusters.own import api_client_from
from jitgrant.models import API_GROUP, API_VERSION, parse_duration

REVOKE_ANNOTATION = "jitgrant.dev/revoke"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_TIMEOUT = 5

LIVE_PHASES = (None, "Pending", "Approved", "Active")


def client_from_args(args: argparse.Namespace) -> ApiClient:
    return api_client_from(args.kubeconfig) if args.kubeconfig else api_client_from(_default_kubeconfig())


def _default_kubeconfig() -> str | None:
    import os
    from pathlib import Path

    path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return path if Path(path).exists() else None


def server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "-"
    seconds = int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def scope_of(spec: Mapping[str, Any]) -> str:
    if spec.get("clusterRole"):
        return f"clusterrole/{spec['clusterRole']} in {spec.get('namespace')}"
    parts = []
    for rule in spec.get("rules") or []:
        names = f"/{','.join(rule['resourceNames'])}" if rule.get("resourceNames") else ""
        parts.append(f"{','.join(rule.get('verbs', []))} {','.join(rule.get('resources', []))}{names}")
    return f"{'; '.join(parts)} in {spec.get('namespace')}"


def row_of(obj: Mapping[str, Any], now: datetime) -> dict[str, str]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    recorded = parse_recorded((meta.get("annotations") or {}).get(APPROVALS_ANNOTATION))
    approvals = status.get("approvals") or []
    return {
        "NAMESPACE": meta.get("namespace", ""),
        "NAME": meta.get("name", ""),
        "PHASE": status.get("phase") or "New",
        "REQUESTER": (spec.get("requester") or {}).get("username", "-"),
        "SCOPE": scope_of(spec),
        "APPROVALS": f"{len(approvals)} ({len(recorded)} recorded)" if recorded else str(len(approvals)),
        "EXPIRES": status.get("expiresAt") or "-",
        "AGE": _age(meta.get("creationTimestamp"), now),
    }


def print_table(rows: Sequence[Mapping[str, str]], *, out: Any = None) -> None:
    out = out or sys.stdout
    if not rows:
        print("No AccessRequests found.", file=out)
        return
    columns = list(rows[0].keys())
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip(), file=out)
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip(), file=out)


def cmd_list(args: argparse.Namespace) -> int:
    custom = CustomObjectsApi(client_from_args(args))
    try:
        if args.all_namespaces:
            result = custom.list_cluster_custom_object(API_GROUP, API_VERSION, "accessrequests")
        else:
            result = custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, args.namespace, "accessrequests"
            )
    except ApiException as exc:
        print(f"error: cannot list AccessRequests: {server_message(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    items = result.get("items", [])
    if args.output == "json":
        print(json.dumps(items, indent=2))
        return EXIT_OK
    now = datetime.now(UTC)
    rows = [row_of(item, now) for item in items]
    if not args.all_namespaces:
        for row in rows:
            row.pop("NAMESPACE")
    print_table(rows)
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    custom = CustomObjectsApi(client_from_args(args))
    try:
        obj = custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, args.namespace, "accessrequests", args.name
        )
    except ApiException as exc:
        if exc.status == 404:
            print(
                f"error: AccessRequest {args.namespace}/{args.name} not found; "
                f"`jitgrant list -n {args.namespace}` shows what exists",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        print(f"error: {server_message(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    if args.output == "json":
        print(json.dumps(obj, indent=2))
        return EXIT_OK
    row = row_of(obj, datetime.now(UTC))
    print_table([row])
    status = obj.get("status") or {}
    if status.get("message"):
        print(f"\n{status.get('reason', '')}: {status['message']}")
    for approval in status.get("approvals") or []:
        print(f"approved by {approval.get('approver')} at {approval.get('at')}")
    return EXIT_OK


def _annotate(args: argparse.Namespace, annotations: dict[str, str], verb: str) -> int:
    custom = CustomObjectsApi(client_from_args(args))
    try:
        custom.patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            args.namespace,
            "accessrequests",
            args.name,
            {"metadata": {"annotations": annotations}},
        )
    except ApiException as exc:
        if exc.status == 404:
            print(f"error: AccessRequest {args.namespace}/{args.name} not found", file=sys.stderr)
            return EXIT_NOT_FOUND
        print(f"error: {verb} refused: {server_message(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"AccessRequest {args.namespace}/{args.name}: {verb} recorded")
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    return _annotate(args, {APPROVE_ANNOTATION: args.reason or ""}, "approval")


def cmd_deny(args: argparse.Namespace) -> int:
    if not args.reason:
        print("error: a denial needs --reason, so the requester learns why", file=sys.stderr)
        return EXIT_USAGE
    return _annotate(args, {DENY_ANNOTATION: args.reason}, "denial")


def cmd_revoke(args: argparse.Namespace) -> int:
    if not args.reason:
        print("error: a revocation needs --reason; it goes into the audit trail", file=sys.stderr)
        return EXIT_USAGE
    if args.all:
        return _revoke_all(args)
    if not args.name:
        print("error: name an AccessRequest, or pass --all", file=sys.stderr)
        return EXIT_USAGE
    return _annotate(args, {REVOKE_ANNOTATION: args.reason}, "revocation")


def _revoke_all(args: argparse.Namespace) -> int:
    """Used by the chart's pre-delete hook: end every live grant while the operator still runs."""
    custom = CustomObjectsApi(client_from_args(args))
    items = custom.list_cluster_custom_object(API_GROUP, API_VERSION, "accessrequests").get("items", [])
    failures = 0
    revoking: list[tuple[str, str]] = []
    for item in items:
        if (item.get("status") or {}).get("phase") not in LIVE_PHASES:
            continue
        meta = item["metadata"]
        try:
            custom.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                meta["namespace"],
                "accessrequests",
                meta["name"],
                {"metadata": {"annotations": {REVOKE_ANNOTATION: args.reason}}},
            )
            print(f"revoking {meta['namespace']}/{meta['name']}")
            revoking.append((meta["namespace"], meta["name"]))
        except ApiException as exc:
            failures += 1
            print(f"error: {meta['namespace']}/{meta['name']}: {server_message(exc)}", file=sys.stderr)
    if failures:
        return EXIT_REFUSED
    if args.wait and revoking:
        return _wait_until_ended(custom, revoking, timeout=parse_duration(args.timeout).total_seconds())
    return EXIT_OK


def _wait_until_ended(custom: CustomObjectsApi, names: list[tuple[str, str]], *, timeout: float) -> int:
    """Wait until the operator has ended every named request (or it is gone), printing progress."""
    deadline = time.monotonic() + timeout
    remaining = set(names)
    while remaining:
        for namespace, name in sorted(remaining):
            try:
                obj = custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, "accessrequests", name
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                remaining.discard((namespace, name))
                continue
            if (obj.get("status") or {}).get("phase") not in LIVE_PHASES:
                print(f"{namespace}/{name}: {(obj.get('status') or {}).get('phase')}")
                remaining.discard((namespace, name))
        if not remaining:
            break
        if time.monotonic() > deadline:
            left = ", ".join(f"{ns}/{n}" for ns, n in sorted(remaining))
            print(
                f"error: still live after {timeout:.0f}s: {left}; is the operator running?", file=sys.stderr
            )
            return EXIT_TIMEOUT
        print(f"waiting for {len(remaining)} request(s) to end...", file=sys.stderr)
        time.sleep(1)
    return EXIT_OK


def add_request_subcommands(sub: Any) -> None:
    def common(parser: argparse.ArgumentParser, *, name: bool = True) -> None:
        if name:
            parser.add_argument("name", nargs="?" if parser.prog.endswith("revoke") else None)
        parser.add_argument("-n", "--namespace", default="default")
        parser.add_argument("--kubeconfig", default=None)

    p = sub.add_parser("list", help="list AccessRequests as a table")
    common(p, name=False)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("get", help="show one AccessRequest, its phase and why")
    common(p)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("approve", help="approve a pending request (as yourself)")
    common(p)
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("deny", help="deny a pending request")
    common(p)
    p.add_argument("--reason", required=False)
    p.set_defaults(func=cmd_deny)

    p = sub.add_parser("revoke", help="end a grant now")
    common(p)
    p.add_argument("--reason", required=False)
    p.add_argument("--all", action="store_true", help="revoke every live request (uninstall hook)")
    p.add_argument("--wait", action="store_true", help="with --all: wait until every grant has ended")
    p.add_argument("--timeout", default="5m", help="with --wait: give up after this long (e.g. 300s)")
    p.set_defaults(func=cmd_revoke)
