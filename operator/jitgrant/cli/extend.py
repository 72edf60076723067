"""`jitgrant extend NAME --by 10m --justification ...`: the requester asks to extend its Active grant
(an AccessRequest with spec.extends, through jitgrant.client). Waits until the extension is applied
(exit 0, the new end printed), refused or denied (10), or the wait bound passes (the extension stays
filed); `--dry-run` asks the operator what would happen, filing nothing."""

from __future__ import annotations

import argparse
import sys

from jitgrant.cli.agent import EXIT_ACTIVE, EXIT_CLUSTER, EXIT_DENIED, agent_client
from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.kubeconfig import CliError, namespace_from_args
from jitgrant.client import AccessDenied, AccessTimedOut, JitgrantError, RequestNotFound
from jitgrant.models import parse_duration
from jitgrant.models.text import for_terminal
from jitgrant.models.vocabulary import format_time


def cmd_extend(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        args.namespace = args.request_namespace
        namespace = namespace_from_args(args)
        if not args.justification or not args.justification.strip():
            raise CliError("--justification is required: why the grant must last longer", ExitCode.USAGE)
        try:
            parse_duration(args.by)
        except ValueError:
            raise CliError(
                f"--by {args.by!r} is not a duration; give e.g. 10m or 1h30m", ExitCode.USAGE
            ) from None
        client = agent_client(args, namespace=namespace)
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.code
    try:
        if args.dry_run:
            check = client.check_extension(
                args.name, by=args.by, justification=args.justification, namespace=namespace
            )
            print(check.outcome, flush=True)
            print(for_terminal(f"{check.outcome}: {check.reason}: {check.message}"), file=err)
            return EXIT_DENIED if check.outcome == "denied" else EXIT_ACTIVE
        grant = client.extend(
            args.name,
            by=args.by,
            justification=args.justification,
            namespace=namespace,
            timeout=args.wait_timeout,
        )
    except RequestNotFound as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return int(ExitCode.NOT_FOUND)
    except AccessDenied as exc:
        print(for_terminal(f"refused: {exc.reason}: {exc.message}"), file=err)
        return EXIT_DENIED
    except AccessTimedOut as exc:
        print(for_terminal(f"timed out: {exc.message}"), file=err)
        return int(ExitCode.TIMED_OUT)
    except JitgrantError as exc:
        print(f"error: {for_terminal(exc.message)}", file=err)
        return EXIT_CLUSTER
    finally:
        client.close()
    until = grant.status.expires_at
    print(f"{namespace}/{args.name}: extended by {args.by}; ends at {format_time(until) if until else '?'}")
    return EXIT_ACTIVE
