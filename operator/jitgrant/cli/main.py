"""`jitgrant`: run the operator, run the demo, and work with AccessRequests and the audit trail.

Also installed as `kubectl-jitgrant`, so `kubectl jitgrant list` works as a kubectl plugin.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from jitgrant.cli.completion import add_completion_subcommand, completion_script
from jitgrant.cli.exitcodes import EXIT_CODES_HELP, ExitCode
from jitgrant.cli.identity import add_identity_subcommand
from jitgrant.cli.parsers import (
    add_activity_subcommand,
    add_agent_subcommands,
    add_receiver_subcommand,
    add_request_subcommands,
)
from jitgrant.cli.policy import add_policy_subcommands, add_who_can_subcommands
from jitgrant.cli.run import add_run_subcommand
from jitgrant.cli.target import add_target_subcommands


def package_version() -> str:
    try:
        return version("jitgrant")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def build_parser(prog: str = "jitgrant") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Just-in-time, time-boxed RBAC grants for AI agents and automation.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_subcommand(sub)
    demo = sub.add_parser("demo", help="run a scenario against the embedded cluster")
    demo.add_argument("--scenario", default="all", help="a scenario name, or 'all'")
    demo.add_argument("--list", action="store_true", help="list the scenarios")
    demo.add_argument(
        "--examples", metavar="PATH", help="the examples/ directory of a checkout (default: this one)"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep each scenario's state directory (kubeconfigs, audit trail) and say where it is",
    )
    demo.set_defaults(func=_demo)
    add_request_subcommands(sub, epilog=EXIT_CODES_HELP)
    add_agent_subcommands(sub)
    add_activity_subcommand(sub)
    add_receiver_subcommand(sub)
    add_identity_subcommand(sub)
    add_policy_subcommands(sub)
    add_who_can_subcommands(sub)
    add_target_subcommands(sub)
    try:
        from jitgrant.audit.cli import add_audit_subcommands
    except ImportError:  # pragma: no cover - the audit CLI ships with the package
        pass
    else:
        add_audit_subcommands(sub)
    add_completion_subcommand(sub)
    sub.choices["completion"].set_defaults(func=lambda args: _completion(parser, args))
    return parser


def _completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(parser, args.shell, prog=parser.prog))
    return int(ExitCode.OK)


def _demo(args: argparse.Namespace) -> int:
    from jitgrant.cli.plugins import run_plugin

    return run_plugin("demo", args)


def main(argv: Sequence[str] | None = None, *, prog: str = "jitgrant") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return int(ExitCode.USAGE)
    result: int = args.func(args)
    return result


def kubectl_plugin() -> int:
    """`kubectl jitgrant ...`: kubectl runs `kubectl-jitgrant` from PATH with the rest of the line."""
    return main(prog=os.path.basename(sys.argv[0]) or "kubectl-jitgrant")


if __name__ == "__main__":
    sys.exit(main())
