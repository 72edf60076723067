"""`jitgrant`: run the operator, run the demo, and work with AccessRequests and the audit trail."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jitgrant.cli.agent import add_request_subcommand
from jitgrant.cli.requests import add_request_subcommands
from jitgrant.cli.run import add_run_subcommand


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jitgrant",
        description="Just-in-time, time-boxed RBAC grants for AI agents and automation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_subcommand(sub)
    demo = sub.add_parser("demo", help="run a scenario against the embedded cluster")
    demo.add_argument("--scenario", default="all", help="a scenario name, or 'all'")
    demo.add_argument("--list", action="store_true", help="list the scenarios")
    demo.add_argument(
        "--examples", metavar="PATH", help="the examples/ directory of a checkout (default: this one)"
    )
    demo.set_defaults(func=_demo)
    add_request_subcommands(sub)
    add_request_subcommand(sub)
    try:
        from jitgrant.audit.cli import add_audit_subcommands
    except ImportError:  # pragma: no cover - the audit CLI ships with the package
        pass
    else:
        add_audit_subcommands(sub)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from jitgrant.cli.plugins import run_plugin

    return run_plugin("demo", args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
