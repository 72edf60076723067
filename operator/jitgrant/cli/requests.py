"""`jitgrant get|list|approve|deny|revoke`: people's view of AccessRequests."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes.config
import urllib3.exceptions
from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from jitgrant.approvals.receipts import parse_recorded
from jitgrant.clusters.own import api_client_from
from jitgrant.models import API_GROUP, API_VERSION, parse_duration
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    DENY_ANNOTATION,
    REVOKE_ANNOTATION,
)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_TIMEOUT = 5

LIVE_PHASES = (None, "Pending", "Approved", "Active")


class CliError(Exception):
    """A failure the user can act on: printed as `error: <message>`, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


def _default_kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return path if Path(path).exists() else None


def kubeconfig_path(args: argparse.Namespace) -> str | None:
    """--kubeconfig, else KUBECONFIG or ~/.kube/config, else None (in-cluster)."""
    if args.kubeconfig:
        if not Path(args.kubeconfig).exists():
            raise CliError(f"kubeconfig {args.kubeconfig} does not exist; pass the path of one", EXIT_USAGE)
        return str(args.kubeconfig)
    path = _default_kubeconfig()
    if path is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise CliError(
            "no kubeconfig found and not running in a cluster: pass --kubeconfig PATH or set KUBECONFIG",
            EXIT_USAGE,
        )
    return path


def client_from_args(args: argparse.Namespace) -> ApiClient:
    path = kubeconfig_path(args)
    try:
        return api_client_from(path)
    except ConfigException as exc:
        where = f"kubeconfig {path}" if path else "the in-cluster configuration"
        raise CliError(f"cannot use {where}: {exc}; pass another with --kubeconfig", EXIT_USAGE) from exc


def namespace_from_args(args: argparse.Namespace) -> str:
    """-n, else the current context's namespace (as kubectl does), else `default`."""
    if getattr(args, "namespace", None):
        return str(args.namespace)
    path = kubeconfig_path(args)
    if path is not None:
        try:
            _, current = kubernetes.config.list_kube_config_contexts(config_file=path)
        except ConfigException:
            return "default"
        namespace = ((current or {}).get("context") or {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"


def with_cluster(command: Callable[[argparse.Namespace, CustomObjectsApi], int]) -> Callable[..., int]:
    """Run a command with a client for the user's cluster; turn what went wrong into a next step."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            if hasattr(args, "namespace"):
                args.namespace = namespace_from_args(args)
            client = client_from_args(args)
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        try:
            return command(args, CustomObjectsApi(client))
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        except ApiException as exc:
            print(f"error: {describe_api_error(exc)}", file=sys.stderr)
            return EXIT_REFUSED
        except urllib3.exceptions.HTTPError as exc:
            print(
                f"error: cannot reach the API server at {client.configuration.host} ({exc}); check that the "
                "cluster is up and that --kubeconfig (or KUBECONFIG) points at it",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        finally:
            client.close()

    return run


def describe_api_error(exc: ApiException) -> str:
    if exc.status == 401:
        return (
            "the API server did not accept your credentials (401 Unauthorized); the token in your "
            "kubeconfig is missing or expired: refresh it, or pass another with --kubeconfig"
        )
    return server_message(exc)


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


@with_cluster
def cmd_list(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    try:
        if args.all_namespaces:
            result = custom.list_cluster_custom_object(API_GROUP, API_VERSION, "accessrequests")
        else:
            result = custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, args.namespace, "accessrequests"
            )
    except ApiException as exc:
        where = "in any namespace" if args.all_namespaces else f"in namespace {args.namespace}"
        hint = "; pick a namespace you can read with -n" if exc.status == 403 else ""
        print(f"error: cannot list AccessRequests {where}: {describe_api_error(exc)}{hint}", file=sys.stderr)
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


def _not_found(args: argparse.Namespace) -> CliError:
    return CliError(
        f"AccessRequest {args.namespace}/{args.name} not found; "
        f"`jitgrant list -n {args.namespace}` shows what exists",
        EXIT_NOT_FOUND,
    )


@with_cluster
def cmd_get(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    try:
        obj = custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, args.namespace, "accessrequests", args.name
        )
    except ApiException as exc:
        if exc.status == 404:
            raise _not_found(args) from exc
        raise
    if args.output == "json":
        print(json.dumps(obj, indent=2))
        return EXIT_OK
    row = row_of(obj, datetime.now(UTC))
    print_table([row])
    status = obj.get("status") or {}
    if status.get("message"):
        print(f"\n{status.get('reason') or status.get('phase') or 'Status'}: {status['message']}")
    counted = {approval.get("receipt") for approval in status.get("approvals") or []}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    for entry in parse_recorded(annotations.get(APPROVALS_ANNOTATION)):
        verb = "approved" if entry.decision == "approve" else "denied"
        note = " (counted)" if entry.receipt in counted else ""
        reason = f": {entry.reason}" if entry.reason else ""
        print(f"{verb} by {entry.approver} at {entry.at.isoformat()}{note}{reason}")
    return EXIT_OK


def _annotate(
    args: argparse.Namespace, custom: CustomObjectsApi, annotations: dict[str, str], verb: str
) -> dict[str, Any]:
    try:
        result: dict[str, Any] = custom.patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            args.namespace,
            "accessrequests",
            args.name,
            {"metadata": {"annotations": annotations}},
        )
    except ApiException as exc:
        if exc.status == 404:
            raise _not_found(args) from exc
        raise CliError(f"{verb} refused: {describe_api_error(exc)}") from exc
    return result


def _decide(args: argparse.Namespace, custom: CustomObjectsApi, annotation: str, verb: str) -> int:
    """Approve or deny: the webhook records the decision under the caller's identity, with a receipt."""
    result = _annotate(args, custom, {annotation: args.reason or ""}, verb)
    annotations = (result.get("metadata") or {}).get("annotations") or {}
    recorded = parse_recorded(annotations.get(APPROVALS_ANNOTATION))
    if annotation in annotations or not recorded:
        raise CliError(
            f"{verb} not recorded: the jitgrant admission webhook did not handle it; check that the "
            "operator and its webhook configurations are installed"
        )
    entry = recorded[-1]
    print(
        f"AccessRequest {args.namespace}/{args.name}: {verb} recorded as {entry.approver} at "
        f"{entry.at.isoformat()} (receipt {entry.receipt[:19]}...); "
        f"`jitgrant get {args.name} -n {args.namespace}` shows the phase"
    )
    return EXIT_OK


@with_cluster
def cmd_approve(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    return _decide(args, custom, APPROVE_ANNOTATION, "approval")


def cmd_deny(args: argparse.Namespace) -> int:
    if not args.reason:
        print("error: a denial needs --reason, so the requester learns why", file=sys.stderr)
        return EXIT_USAGE
    return _deny(args)


@with_cluster
def _deny(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    return _decide(args, custom, DENY_ANNOTATION, "denial")


def cmd_revoke(args: argparse.Namespace) -> int:
    if not args.reason:
        print("error: a revocation needs --reason; it goes into the audit trail", file=sys.stderr)
        return EXIT_USAGE
    if args.all:
        return _revoke_all(args)
    if not args.name:
        print("error: name an AccessRequest, or pass --all", file=sys.stderr)
        return EXIT_USAGE
    return _revoke_one(args)


@with_cluster
def _revoke_one(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    try:
        current = custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, args.namespace, "accessrequests", args.name
        )
    except ApiException as exc:
        if exc.status == 404:
            raise _not_found(args) from exc
        raise
    phase = (current.get("status") or {}).get("phase")
    if phase not in LIVE_PHASES:
        print(f"AccessRequest {args.namespace}/{args.name} has already ended ({phase}); nothing to revoke")
        return EXIT_OK
    _annotate(args, custom, {REVOKE_ANNOTATION: args.reason}, "revocation")
    print(
        f"AccessRequest {args.namespace}/{args.name}: revocation requested; the operator removes the grant "
        f"now (`jitgrant get {args.name} -n {args.namespace}` shows when it is Revoked)"
    )
    return EXIT_OK


@with_cluster
def _revoke_all(args: argparse.Namespace, custom: CustomObjectsApi) -> int:
    """Used by the chart's pre-delete hook: end every live grant while the operator still runs."""
    try:
        items = custom.list_cluster_custom_object(API_GROUP, API_VERSION, "accessrequests").get("items", [])
    except ApiException as exc:
        raise CliError(f"cannot list AccessRequests in all namespaces: {describe_api_error(exc)}") from exc
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
            print(f"error: {meta['namespace']}/{meta['name']}: {describe_api_error(exc)}", file=sys.stderr)
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
        parser.add_argument(
            "-n", "--namespace", default=None, help="default: the kubeconfig context's namespace, or default"
        )
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
