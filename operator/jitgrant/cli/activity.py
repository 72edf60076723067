"""`jitgrant activity NAME`: what the agent did with its grant, from the API server's audit log.

What it shows and how each call is tied to the grant: parsers.ACTIVITY_DESCRIPTION (its --help);
sources, attribution and limits: docs/audit.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from io import StringIO
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from jitgrant.activity.attribution import AttributedCall, GrantIdentity, Outcome, activity
from jitgrant.activity.grant import NoGrant, identity_of
from jitgrant.activity.sources import AuditLogFiles, AuditSource, CloudWatchAuditLogs, SourceError, Window
from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.kubeconfig import CliError
from jitgrant.cli.requests import with_cluster
from jitgrant.client.people import PeopleClient
from jitgrant.models.request import AccessRequest, Phase
from jitgrant.models.text import CELL_LIMIT, for_terminal

COLUMNS = ("TIME", "VERB", "RESOURCE", "OBJECT", "CODE", "OUTCOME", "ATTRIBUTION", "USER-AGENT")


def source_from_args(args: argparse.Namespace) -> AuditSource:
    if args.audit_log is not None:
        return AuditLogFiles(args.audit_log)
    return CloudWatchAuditLogs(
        cluster=args.eks_cluster, region=args.region, endpoint_url=args.endpoint_url, log_group=args.log_group
    )


def load_request(client: PeopleClient, args: argparse.Namespace) -> AccessRequest:
    raw = client.get_request(args.namespace, args.name)  # RequestNotFound: exit 3 (with_cluster)
    try:
        return AccessRequest.from_object(raw)
    except ValidationError as exc:
        raise CliError(f"AccessRequest {args.namespace}/{args.name} cannot be read: {exc}") from exc


def read_activity(source: AuditSource, grant: GrantIdentity) -> list[AttributedCall]:
    terms = frozenset({*grant.usernames, grant.binding_name})
    return activity(source.calls(Window(start=grant.start, end=grant.end, terms=terms)), grant)


def cmd_activity(args: argparse.Namespace, client: PeopleClient) -> int:
    source = source_from_args(args)
    try:
        request = load_request(client, args)
        grant = identity_of(request)
        calls = read_activity(source, grant)
    except (NoGrant, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(ExitCode.NOT_FOUND if isinstance(exc, NoGrant) else ExitCode.REFUSED)
    if not args.follow:
        print(render(request, grant, source, calls, args.output), end="")
        return int(ExitCode.OK)
    return follow(args, client, source, request, grant, calls)


# What `jitgrant activity` runs (parsers.py names it, so --help does not import this module).
run_activity = with_cluster(cmd_activity)


def follow(
    args: argparse.Namespace,
    client: PeopleClient,
    source: AuditSource,
    request: AccessRequest,
    grant: GrantIdentity,
    calls: list[AttributedCall],
) -> int:
    """Prints calls as they reach the log until the grant ends (plus one last read for stragglers)."""
    shown: set[str] = set()
    out = sys.stdout
    if args.output == "table":
        print(header(request, grant, source), file=out)
        print_rows([], out, header=True)
    live = True
    while True:
        fresh = [item for item in calls if _key(item) not in shown]
        shown.update(_key(item) for item in fresh)
        _print_fresh(fresh, args.output, out)
        if not live:
            return int(ExitCode.OK)
        time.sleep(args.interval)
        request = load_request(client, args)
        live = request.status.phase in (Phase.ACTIVE, Phase.APPROVED, None)
        try:
            grant = identity_of(request)
            calls = read_activity(source, grant)
        except (NoGrant, SourceError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return int(ExitCode.REFUSED)


def _key(item: AttributedCall) -> str:
    return item.call.audit_id or f"{item.call.time.isoformat()}-{item.call.verb}-{item.call.request_uri}"


def _print_fresh(fresh: Sequence[AttributedCall], fmt: str, out: TextIO) -> None:
    if fmt == "table":
        print_rows(fresh, out, header=False)
    else:  # one document per call, so a pipe sees each as it comes
        for item in fresh:
            text = json.dumps(item.to_json()) if fmt == "json" else "---\n" + yaml.safe_dump(item.to_json())
            print(text, file=out)
    out.flush()


def header(request: AccessRequest, grant: GrantIdentity, source: AuditSource) -> str:
    end = grant.end.isoformat() if grant.end else "now (still live)"
    return for_terminal(
        f"AccessRequest {request.metadata.namespace}/{request.metadata.name}: RoleBinding "
        f"{grant.binding_namespace}/{grant.binding_name}, identity "
        f"{', '.join(sorted(grant.usernames)) or '-'}, window {grant.start.isoformat()} .. {end}; "
        f"from {source.name}"
    )


def summary_counts(calls: Sequence[AttributedCall]) -> dict[str, int]:
    counts = {outcome.value: 0 for outcome in Outcome}
    for item in calls:
        counts[item.outcome.value] += 1
    return counts


def as_document(
    request: AccessRequest, grant: GrantIdentity, source: AuditSource, calls: Sequence[AttributedCall]
) -> dict[str, Any]:
    return {
        "request": f"{request.metadata.namespace}/{request.metadata.name}",
        "roleBinding": f"{grant.binding_namespace}/{grant.binding_name}",
        "identities": sorted(grant.usernames),
        "window": {
            "start": grant.start.isoformat(),
            "end": grant.end.isoformat() if grant.end else None,
        },
        "source": source.name,
        "counts": summary_counts(calls),
        "calls": [item.to_json() for item in calls],
    }


def render(
    request: AccessRequest,
    grant: GrantIdentity,
    source: AuditSource,
    calls: Sequence[AttributedCall],
    fmt: str,
) -> str:
    if fmt == "json":
        return json.dumps(as_document(request, grant, source, calls), indent=2) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(as_document(request, grant, source, calls), sort_keys=False))
    buffer = StringIO()
    print(header(request, grant, source), file=buffer)
    print_rows(calls, buffer, header=True)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in summary_counts(calls).items() if count)
    print(f"{len(calls)} calls" + (f": {counts}" if counts else ""), file=buffer)
    return buffer.getvalue()


def _cells(item: AttributedCall) -> tuple[str, ...]:
    call = item.call
    basis = "exact" if item.basis.value == "authorization-reason" else "identity+window"
    cells = (
        call.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        call.verb,
        call.target,
        call.object or "-",
        "-" if call.code is None else str(call.code),
        item.outcome.value,
        basis,
        for_terminal(call.user_agent.split(" ")[0] or "-", limit=CELL_LIMIT),
    )
    # The grant's holder chose the object names and the user agent: shown, never acted on.
    return tuple(for_terminal(cell) for cell in cells)


def print_rows(calls: Sequence[AttributedCall], out: TextIO, *, header: bool) -> None:
    rows = [_cells(item) for item in calls]
    widths = [max([len(column), *(len(row[index]) for row in rows)]) for index, column in enumerate(COLUMNS)]
    lines = [COLUMNS, *rows] if header else rows
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)
