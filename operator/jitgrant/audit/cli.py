"""`jitgrant audit verify` and `jitgrant audit query`: the auditor's side of the trail.

Wired into the `jitgrant` command by `add_audit_subcommands`; each command returns its exit code:
0 when all is well, 1 when verification found something wrong, 2 when the trail or a key could not
be read or the arguments make no sense.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jitgrant.audit.chain import (
    DEFAULT_GRACE,
    StoredLine,
    VerifyReport,
    parse_lines,
    unique_records,
    verify_chain,
)
from jitgrant.audit.checkpoint import key_id, load_public_key
from jitgrant.audit.query import OUTCOMES, GrantFilter, format_table, grant_rows, select
from jitgrant.audit.readers import ReadError, read_cloudwatch, read_file, read_s3
from jitgrant.audit.records import AuditRecord

EXIT_OK, EXIT_TAMPERED, EXIT_ERROR = 0, 1, 2


def add_audit_subcommands(subparsers: argparse._SubParsersAction[Any]) -> None:
    audit = subparsers.add_parser("audit", help="verify and query the audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    verify = commands.add_parser("verify", help="check that nobody edited, removed or reordered records")
    _add_source_arguments(verify)
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        type=Path,
        metavar="PEM",
        help="Ed25519 public key that signs checkpoints (repeat for rotated keys)",
    )
    verify.add_argument("--start-seq", type=int, default=1, help="first sequence number expected")
    verify.add_argument(
        "--until",
        type=_parse_time,
        help="the time the trail should reach (ISO 8601; default: now): with a public key, verify "
        "fails when the newest checkpoint is older than its heartbeat interval allows at this time",
    )
    verify.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"how late a heartbeat checkpoint may be (default {DEFAULT_GRACE.total_seconds():g})",
    )
    verify.add_argument(
        "--checkpoint-interval",
        type=_seconds,
        metavar="SECONDS",
        help="the heartbeat interval to expect (default: the one the newest checkpoint states)",
    )
    verify.add_argument("--output", choices=("text", "json"), default="text")
    verify.set_defaults(func=verify_command)

    query = commands.add_parser("query", help="list grants: who, what scope, when, approved by whom")
    _add_source_arguments(query, several=True)
    query.add_argument("--cluster", help="cluster name or EKS cluster ARN (wildcards allowed)")
    query.add_argument("--namespace", help="namespace the grant was for (wildcards allowed)")
    query.add_argument("--requester", help="requester username (wildcards allowed)")
    query.add_argument("--approver", help="an approver (wildcards allowed)")
    query.add_argument("--since", type=_parse_time, help="ISO 8601 time; UTC when no offset is given")
    query.add_argument("--until", type=_parse_time, help="ISO 8601 time; UTC when no offset is given")
    query.add_argument("--outcome", action="append", choices=OUTCOMES, default=[], help="repeatable")
    query.add_argument("--output", choices=("table", "json"), default="table")
    query.add_argument(
        "--with-activity",
        action="store_true",
        help="show what each grant's identity did (its activity-summary record: calls, refusals)",
    )
    query.set_defaults(func=query_command)


def _add_source_arguments(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    if several:  # one trail per replica: a transition any of them recorded is counted once
        source.add_argument(
            "--file",
            type=Path,
            action="append",
            help="a JSON-lines file written by the file sink (repeat for each instance's trail)",
        )
    else:
        source.add_argument("--file", type=Path, help="a JSON-lines file written by the file sink")
    source.add_argument("--s3", metavar="s3://BUCKET/PREFIX", help="the S3 sink's prefix for one instance")
    source.add_argument("--cloudwatch", metavar="GROUP:STREAM", help="a CloudWatch Logs stream")
    parser.add_argument("--endpoint-url", help="AWS endpoint override (a VPC endpoint, or moto)")
    parser.add_argument("--region", help="AWS region")


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seconds(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return timedelta(seconds=value)


def _read(args: argparse.Namespace) -> list[StoredLine]:
    if args.file is not None:
        return read_file(args.file)
    return _read_remote(args)


def _read_remote(args: argparse.Namespace) -> list[StoredLine]:
    if args.s3 is not None:
        return read_s3(args.s3, endpoint_url=args.endpoint_url, region=args.region)
    return read_cloudwatch(args.cloudwatch, endpoint_url=args.endpoint_url, region=args.region)


def verify_command(args: argparse.Namespace) -> int:
    try:
        keys = {}
        for path in args.public_key:
            key = load_public_key(Path(path).read_bytes())
            keys[key_id(key)] = key
        lines = _read(args)
    except (OSError, ValueError, ReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    report = verify_chain(
        lines,
        public_keys=keys or None,
        start_seq=args.start_seq,
        until=args.until or datetime.now(UTC),
        grace=args.grace,
        interval=args.checkpoint_interval,
    )
    if args.output == "json":
        print(json.dumps(_report_json(report), indent=2))
    else:
        print(_report_text(report))
    return EXIT_OK if report.ok else EXIT_TAMPERED


def _report_text(report: VerifyReport) -> str:
    span = f" (seq {report.first_seq}..{report.last_seq})" if report.records else ""
    lines = [
        f"{report.records} records{span}, {report.checkpoints} checkpoints "
        f"({report.verified_checkpoints} with a valid signature), {report.duplicates} repeats skipped"
    ]
    coverage = report.coverage
    if report.ok and (coverage.proven or coverage.unproven):
        lines.append("OK: no tampering found; what that proves and what it does not:")
    elif report.ok:
        lines.append("OK: the chain's links and hashes hold (without a public key, a forger could redo them)")
    else:
        lines.append(f"FAILED: first bad sequence number {report.first_bad_seq}")
        for finding in report.findings:
            where = f"  [{finding.location}]" if finding.location else ""
            seq = "-" if finding.seq is None else str(finding.seq)
            lines.append(f"  {finding.kind:<15} seq {seq:>6}  {finding.detail}{where}")
    lines.extend(f"proven: {statement}" for statement in coverage.proven)
    lines.extend(f"NOT proven: {statement}" for statement in coverage.unproven)
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "firstBadSeq": report.first_bad_seq,
        "records": report.records,
        "firstSeq": report.first_seq,
        "lastSeq": report.last_seq,
        "duplicates": report.duplicates,
        "repeatedTransitions": report.repeated_transitions,
        "checkpoints": report.checkpoints,
        "verifiedCheckpoints": report.verified_checkpoints,
        "lastCheckpointSeq": report.last_checkpoint_seq,
        "findings": [
            {"kind": f.kind, "seq": f.seq, "detail": f.detail, "location": f.location}
            for f in report.findings
        ],
        "notes": list(report.notes),
        "proven": list(report.coverage.proven),
        "notProven": list(report.coverage.unproven),
        "provenThroughSeq": report.coverage.proven_through_seq,
        "provenFrom": _iso_or_none(report.coverage.proven_from),
        "provenUntil": _iso_or_none(report.coverage.proven_until),
        "closedByShutdown": report.coverage.closed,
        "checkpointIntervalSeconds": report.coverage.interval_seconds,
    }


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def query_command(args: argparse.Namespace) -> int:
    try:
        trails = [read_file(path) for path in args.file] if args.file else [_read_remote(args)]
    except ReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    records = []
    for lines in trails:  # each its own chain; the rows fold a transition any of them holds once
        stored, _, _ = parse_lines(lines)
        for item in unique_records(stored)[0]:
            try:
                records.append(AuditRecord.model_validate(item.raw))
            except ValidationError:
                print(f"warning: skipping an unreadable record at {item.location}", file=sys.stderr)
        if not verify_chain(lines).ok:
            where = lines[0].location.rsplit(":", 1)[0] if lines else "this trail"
            print(f"warning: {where} does not verify; run `jitgrant audit verify`", file=sys.stderr)
    grant_filter = GrantFilter(
        cluster=args.cluster,
        namespace=args.namespace,
        requester=args.requester,
        approver=args.approver,
        since=args.since,
        until=args.until,
        outcomes=frozenset(args.outcome),
    )
    rows = select(grant_rows(records), grant_filter)
    if args.output == "json":
        print(json.dumps([row.to_json(with_activity=args.with_activity) for row in rows], indent=2))
    else:
        print(format_table(rows, with_activity=args.with_activity))
    return EXIT_OK
