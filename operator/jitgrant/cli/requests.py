"""`jitgrant list|get|describe|approve|deny|revoke`: people's view of AccessRequests.

Read commands take kubectl's flags (-n, -A, -l, -o, --watch, --request-timeout, --context, --as);
`get NAME` prints its row and `describe NAME` what an approver decides on (describe.py). Every call
goes through jitgrant.client's PeopleClient (no Kubernetes client here: an import-linter contract).
Exit codes come from exitcodes.py, one table for all.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from jitgrant.approvals.receipts import parse_recorded
from jitgrant.cli.describe import Paint, approvals_needed, describe_request, removal_overdue, scope_of
from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.kubeconfig import CliError, namespace_from_args, people_from_args
from jitgrant.cli.output import as_list, custom_columns, render_structured
from jitgrant.client import ApiRefused, ApiUnreachable, JitgrantError, RequestNotFound
from jitgrant.models import (
    TERMINAL_PHASES,
    ApprovalPolicy,
    Phase,
    RequesterStamp,
    parse_duration,
)
from jitgrant.models.text import CELL_LIMIT, for_terminal, terminal_tree
from jitgrant.models.vocabulary import (
    APPROVALS_ANNOTATION,
    APPROVE_ANNOTATION,
    DENY_ANNOTATION,
    REVOKE_ANNOTATION,
)

if TYPE_CHECKING:
    from jitgrant.client.people import PeopleClient

# The names cli/agent.py imports; the values are the shared table's.
EXIT_OK = int(ExitCode.OK)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_NOT_FOUND = int(ExitCode.NOT_FOUND)
EXIT_REFUSED = int(ExitCode.REFUSED)
EXIT_TIMEOUT = int(ExitCode.TIMED_OUT)

LIVE_PHASES = (None, "Pending", "Approved", "Active")

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "CliError",
    "describe_api_error",
    "namespace_from_args",
    "scope_of",
]


def with_cluster(command: Callable[[argparse.Namespace, PeopleClient], int]) -> Callable[..., int]:
    """Run a command with a client for the user's cluster; turn what went wrong into a next step."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            if hasattr(args, "namespace"):
                args.namespace = namespace_from_args(args)
            client = people_from_args(args)
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        try:
            return command(args, client)
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        except RequestNotFound as exc:
            print(f"error: {for_terminal(exc.message)}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except ApiRefused as exc:
            print(f"error: {describe_api_error(exc)}", file=sys.stderr)
            return EXIT_REFUSED
        except (ApiUnreachable, JitgrantError) as exc:
            print(f"error: {for_terminal(exc.message)}", file=sys.stderr)
            return EXIT_REFUSED
        except KeyboardInterrupt:
            return int(ExitCode.INTERRUPTED)
        finally:
            client.close()

    return run


def describe_api_error(exc: ApiRefused) -> str:
    if exc.status == 401:
        return (
            "the API server did not accept your credentials (401 Unauthorized); the token in your "
            "kubeconfig is missing or expired: refresh it, or pass another with --kubeconfig"
        )
    return server_message(exc)


def server_message(exc: ApiRefused) -> str:
    """The API server's message (a webhook's refusal may quote a justification), safe to print."""
    return for_terminal(exc.message)


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "-"
    seconds = int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def row_of(obj: Mapping[str, Any], now: datetime, *, wide: bool = False) -> dict[str, str]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    recorded = parse_recorded((meta.get("annotations") or {}).get(APPROVALS_ANNOTATION))
    approvals = status.get("approvals") or []
    row = {
        "NAMESPACE": meta.get("namespace", ""),
        "NAME": meta.get("name", ""),
        "PHASE": status.get("phase") or "New",
        "REQUESTER": (spec.get("requester") or {}).get("username", "-"),
        # An extension's scope is its grant's: what it asks is more time on that grant.
        "SCOPE": f"+{spec.get('duration')} on {spec['extends']}" if spec.get("extends") else scope_of(spec),
        "APPROVALS": f"{len(approvals)} ({len(recorded)} recorded)" if recorded else str(len(approvals)),
        "EXPIRES": _expires(status),
        "AGE": _age(meta.get("creationTimestamp"), now),
    }
    if wide:
        overdue = removal_overdue(status)
        row |= {
            # An ended grant whose objects its cluster has not let go of yet: since when.
            "REMOVAL-OVERDUE": str(overdue.get("lastTransitionTime")) if overdue is not None else "-",
            "POLICY": spec.get("policy", ""),
            "REASON": status.get("reason") or "-",
            "JUSTIFICATION": spec.get("justification") or "-",
        }
    # Every cell may hold text someone else wrote (a justification, an OIDC subject, resource names):
    # shown with its control characters escaped, and a long one cut, so a row stays one honest line.
    return {
        column: for_terminal(str(value), limit=CELL_LIMIT if column in _FREE_TEXT else None)
        for column, value in row.items()
    }


def _expires(status: Mapping[str, Any]) -> str:
    """When the access ends: the planned expiry while it may still come; for a request that ended
    otherwise (revoked, released, denied, failed, timed out), when it ended, marked so."""
    phase, ended = status.get("phase"), status.get("endedAt")
    if ended and phase in TERMINAL_PHASES and phase != Phase.EXPIRED:
        return f"ended:{ended}"
    return str(status.get("expiresAt") or "-")


# Columns cut at CELL_LIMIT (names are never cut: an approver types them; describe shows all).
_FREE_TEXT = frozenset({"REQUESTER", "SCOPE", "JUSTIFICATION"})


#: The widest a cell of these columns gets as a request moves on, so rows --watch prints later (New ->
#: Pending -> Active with an expiry -> ended:<time>) stay aligned with the first ones.
WATCH_WIDTHS = {
    "PHASE": max(len(phase) for phase in Phase),
    "EXPIRES": len("ended:2006-01-02T15:04:05Z"),
    "APPROVALS": len("10 (10 recorded)"),
    "AGE": len("999d"),
    "REASON": len("AwaitingApproval"),
}


class Table:
    """kubectl's table: widths fixed by the first rows, so rows printed later by --watch line up."""

    def __init__(self, *, namespaced: bool, wide: bool, out: Any = None) -> None:
        self.namespaced, self.wide, self.out = namespaced, wide, out or sys.stdout
        self.widths: dict[str, int] = {}

    def _cells(self, obj: Mapping[str, Any]) -> dict[str, str]:
        row = row_of(obj, datetime.now(UTC), wide=self.wide)
        if self.namespaced:
            row.pop("NAMESPACE")
        return row

    def _line(self, row: Mapping[str, str]) -> str:
        return "  ".join(row[c].ljust(self.widths.get(c, len(row[c]))) for c in row).rstrip()

    def print(self, objs: Sequence[Mapping[str, Any]], *, header: bool = True) -> None:
        rows = [self._cells(obj) for obj in objs]
        if not rows:
            if header:
                print("No AccessRequests found.", file=self.out, flush=True)
            return
        if not self.widths:
            self.widths = {
                c: max(len(c), WATCH_WIDTHS.get(c, 0), *(len(r[c]) for r in rows)) for c in rows[0]
            }
            if header:
                print(self._line({c: c for c in rows[0]}), file=self.out, flush=True)
        for row in rows:
            print(self._line(row), file=self.out, flush=True)


def _emit(data: Any, fmt: str, *, header: bool = True) -> bool:
    if fmt.startswith("custom-columns="):
        items = data.get("items", []) if data.get("kind") == "List" else [data]
        sys.stdout.write(custom_columns(fmt.partition("=")[2], items, header=header))
        sys.stdout.flush()
        return True
    if fmt.startswith("jsonpath=") and sys.stdout.isatty():
        data = terminal_tree(data)  # json and yaml escape control characters themselves
    text = render_structured(data, fmt)
    if text is None:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def _watch(
    client: PeopleClient,
    args: argparse.Namespace,
    resource_version: str,
    show: Callable[[Mapping[str, Any]], None],
    *,
    field_selector: str | None = None,
) -> int:
    """Follow changes after `resource_version` until --request-timeout (or Ctrl-C), as `kubectl -w`."""
    namespace = None if getattr(args, "all_namespaces", False) else args.namespace
    timeout = client.connection.request_timeout
    for _, obj in client.watch_requests(
        namespace,
        resource_version,
        selector=getattr(args, "selector", None),
        field_selector=field_selector,
        timeout=timeout,
    ):
        show(obj)
    return EXIT_OK


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}", EXIT_USAGE) from exc


@with_cluster
def cmd_list(args: argparse.Namespace, client: PeopleClient) -> int:
    namespace = None if args.all_namespaces else args.namespace
    try:
        result = client.list_requests(namespace, selector=args.selector)
    except ApiRefused as exc:
        where = "in any namespace" if args.all_namespaces else f"in namespace {args.namespace}"
        hint = "; pick a namespace you can read with -n" if exc.status == 403 else ""
        print(f"error: cannot list AccessRequests {where}: {describe_api_error(exc)}{hint}", file=sys.stderr)
        return EXIT_REFUSED
    keep: Callable[[Mapping[str, Any]], bool] = lambda obj: True  # noqa: E731
    if args.pending:
        keep = PendingFor(client).may_decide
    items = [item for item in result.get("items", []) if keep(item)]
    resource_version = str((result.get("metadata") or {}).get("resourceVersion") or "")
    table = Table(namespaced=not args.all_namespaces, wide=args.output == "wide")
    if not _emit(as_list(items, resource_version=resource_version), args.output):
        table.print(items)
    printed = bool(items)

    def show(obj: Mapping[str, Any]) -> None:
        nonlocal printed
        if args.pending and not keep(obj):
            return
        if not _emit(obj, args.output, header=not printed):
            table.print([obj], header=not table.widths)
        printed = True

    return _watch(client, args, resource_version, show) if args.watch else EXIT_OK


def _get(client: PeopleClient, args: argparse.Namespace) -> dict[str, Any]:
    return client.get_request(args.namespace, args.name)


def _readable(fn: Callable[[], Any], what: str) -> tuple[Any, str | None]:
    """What the caller may read, or why not (an approver without `get clusterroles` still decides)."""
    try:
        return fn(), None
    except ApiRefused as exc:
        if exc.status in (403, 404):
            return None, f"{what}: {server_message(exc)}"
        raise


def describe(client: PeopleClient, obj: Mapping[str, Any], *, paint: Paint) -> str:
    spec = obj.get("spec") or {}
    rules, role_error = None, None
    if spec.get("clusterRole"):
        role, role_error = _readable(
            lambda: client.get_cluster_role(spec["clusterRole"]),
            f"cannot read ClusterRole {spec['clusterRole']}",
        )
        if role is not None:
            rules = list(role.get("rules") or [])
    policy, _ = _readable(lambda: client.get_policy(spec.get("policy", "")), "policy")
    return describe_request(
        obj,
        cluster_role_rules=rules,
        cluster_role_error=role_error,
        policy_spec=(policy or {}).get("spec") if policy else None,
        paint=paint,
    )


@with_cluster
def cmd_get(args: argparse.Namespace, client: PeopleClient) -> int:
    """`get NAME`: one row, as `kubectl get` prints one (describe prints the prose view)."""
    obj = _get(client, args)
    table = Table(namespaced=True, wide=args.output == "wide")
    if not _emit(obj, args.output):
        table.print([obj])

    def show(changed: Mapping[str, Any]) -> None:
        if not _emit(changed, args.output, header=False):
            table.print([changed], header=not table.widths)

    if not args.watch:
        return EXIT_OK
    rv = str(obj["metadata"].get("resourceVersion") or "")
    return _watch(client, args, rv, show, field_selector=f"metadata.name={args.name}")


@with_cluster
def cmd_describe(args: argparse.Namespace, client: PeopleClient) -> int:
    """`describe NAME`: what an approver decides on, in prose (describe.py)."""
    obj = _get(client, args)
    sys.stdout.write(describe(client, obj, paint=Paint.for_stream(sys.stdout)))
    sys.stdout.flush()
    return EXIT_OK


class PendingFor:
    """`list --pending`: Pending requests the caller may decide on, by the policy's approver rules.

    The caller's identity comes from a SelfSubjectReview (the API server's view, impersonation
    included), and the rule is the webhook's own (`eligibility`), so the list never offers a request
    the webhook would then refuse.
    """

    def __init__(self, client: PeopleClient) -> None:
        me = client.whoami()
        self.username: str = me.username
        self.groups: tuple[str, ...] = me.groups
        self.client = client
        self.policies: dict[str, ApprovalPolicy | None] = {}

    def _approval(self, name: str) -> ApprovalPolicy | None:
        if name not in self.policies:
            body, why = _readable(
                lambda: self.client.get_policy(name),
                f"policy {name}",
            )
            if why:
                print(f"warning: {why}; its requests are not listed", file=sys.stderr)
            try:
                approval = (body or {}).get("spec", {}).get("approval") or {}
                self.policies[name] = ApprovalPolicy.model_validate(approval) if body else None
            except ValidationError:
                self.policies[name] = None
        return self.policies[name]

    def may_decide(self, obj: Mapping[str, Any]) -> bool:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if status.get("phase") != "Pending" or not spec.get("requester"):
            return False
        approval = self._approval(str(spec.get("policy")))
        if approval is None or approvals_needed({"approval": approval.model_dump(by_alias=True)}) == 0:
            return False
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        from jitgrant.approvals.counting import eligibility, person_key  # --pending alone

        decided = {person_key(e.approver) for e in parse_recorded(annotations.get(APPROVALS_ANNOTATION))}
        if person_key(self.username) in decided:
            return False
        try:
            requester = RequesterStamp.model_validate(spec["requester"])
        except ValidationError:
            return False
        why_not = eligibility(
            policy=approval, requester=requester, approver=self.username, groups=self.groups
        )
        return why_not is None


def _annotate(
    args: argparse.Namespace, client: PeopleClient, annotations: dict[str, str], verb: str
) -> dict[str, Any]:
    try:
        return client.annotate_request(args.namespace, args.name, annotations)
    except ApiRefused as exc:
        raise CliError(f"{verb} refused: {describe_api_error(exc)}") from exc


def _decide(args: argparse.Namespace, client: PeopleClient, annotation: str, verb: str) -> int:
    """Approve or deny: the webhook records the decision under the caller's identity, with a receipt."""
    result = _annotate(args, client, {annotation: args.reason or ""}, verb)
    annotations = (result.get("metadata") or {}).get("annotations") or {}
    recorded = parse_recorded(annotations.get(APPROVALS_ANNOTATION))
    if annotation in annotations or not recorded:
        raise CliError(
            f"{verb} not recorded: the jitgrant admission webhook did not handle it; check that the "
            "operator and its webhook configurations are installed"
        )
    if _emit_object(result, args):
        return EXIT_OK
    entry = recorded[-1]
    print(
        f"AccessRequest {args.namespace}/{args.name}: {verb} recorded as {entry.approver} at "
        f"{entry.at.isoformat()} (receipt {entry.receipt[:19]}...); "
        f"`jitgrant get {args.name} -n {args.namespace}` shows the phase"
    )
    return EXIT_OK


def _emit_object(obj: Mapping[str, Any], args: argparse.Namespace) -> bool:
    """-o on a command that changes one object: the object as changed; False for the usual line."""
    fmt = getattr(args, "output", None)
    if fmt is None:
        return False
    if fmt == "wide":
        Table(namespaced=True, wide=True).print([obj])
        return True
    return _emit(dict(obj), fmt)


@with_cluster
def cmd_approve(args: argparse.Namespace, client: PeopleClient) -> int:
    return _decide(args, client, APPROVE_ANNOTATION, "approval")


def cmd_deny(args: argparse.Namespace) -> int:
    if not args.reason:
        print("error: a denial needs --reason, so the requester learns why", file=sys.stderr)
        return EXIT_USAGE
    return _deny(args)


@with_cluster
def _deny(args: argparse.Namespace, client: PeopleClient) -> int:
    return _decide(args, client, DENY_ANNOTATION, "denial")


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
def _revoke_one(args: argparse.Namespace, client: PeopleClient) -> int:
    current = _get(client, args)
    phase = (current.get("status") or {}).get("phase")
    if phase not in LIVE_PHASES:
        if _emit_object(current, args):
            return EXIT_OK
        print(f"AccessRequest {args.namespace}/{args.name} has already ended ({phase}); nothing to revoke")
        return EXIT_OK
    changed = _annotate(args, client, {REVOKE_ANNOTATION: args.reason}, "revocation")
    if _emit_object(changed, args):
        return EXIT_OK
    print(
        f"AccessRequest {args.namespace}/{args.name}: revocation requested; the operator removes the grant "
        f"now (`jitgrant get {args.name} -n {args.namespace}` shows when it is Revoked)"
    )
    return EXIT_OK


@with_cluster
def _revoke_all(args: argparse.Namespace, client: PeopleClient) -> int:
    """Used by the chart's pre-delete hook: end every live grant while the operator still runs."""
    try:
        items = client.list_requests(None).get("items", [])
    except ApiRefused as exc:
        raise CliError(f"cannot list AccessRequests in all namespaces: {describe_api_error(exc)}") from exc
    failures = 0
    revoking: list[tuple[str, str]] = []
    for item in items:
        if (item.get("status") or {}).get("phase") not in LIVE_PHASES:
            continue
        meta = item["metadata"]
        try:
            client.annotate_request(meta["namespace"], meta["name"], {REVOKE_ANNOTATION: args.reason})
            print(f"revoking {meta['namespace']}/{meta['name']}")
            revoking.append((meta["namespace"], meta["name"]))
        except (ApiRefused, RequestNotFound) as exc:
            failures += 1
            print(f"error: {meta['namespace']}/{meta['name']}: {for_terminal(exc.message)}", file=sys.stderr)
    if failures:
        return EXIT_REFUSED
    if args.wait and revoking:
        return _wait_until_ended(client, revoking, timeout=_duration(wait_timeout(args), "--wait-timeout"))
    return EXIT_OK


def wait_timeout(args: argparse.Namespace) -> str:
    """--wait-timeout, or its deprecated spelling --timeout (with a warning: kubectl's --timeout and
    --request-timeout mean other things)."""
    if getattr(args, "deprecated_timeout", None) is not None:
        print("warning: --timeout is deprecated (removed in 0.2): use --wait-timeout", file=sys.stderr)
        return str(args.deprecated_timeout)
    return str(args.wait_timeout)


def _wait_until_ended(client: PeopleClient, names: list[tuple[str, str]], *, timeout: float) -> int:
    """Wait until the operator has ended every named request (or it is gone), printing progress."""
    deadline = time.monotonic() + timeout
    remaining = set(names)
    while remaining:
        for namespace, name in sorted(remaining):
            try:
                obj = client.get_request(namespace, name)
            except RequestNotFound:
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
