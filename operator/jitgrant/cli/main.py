"""`jitgrant`: run the operator, run the demo, and work with AccessRequests and the audit trail.

Also installed as `kubectl-jitgrant`, so `kubectl jitgrant list` works as a kubectl plugin.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jitgrant.cli.completion import add_completion_subcommand, completion_script
from jitgrant.cli.console import add_console_subcommand
from jitgrant.cli.exitcodes import EXIT_CODES_HELP, ExitCode
from jitgrant.cli.identity import add_identity_subcommand
from jitgrant.cli.parsers import (
    add_activity_subcommand,
    add_agent_subcommands,
    add_receiver_subcommand,
    add_request_subcommands,
)
from jitgrant.cli.policy import add_policy_subcommands, add_who_can_subcommands
from jitgrant.cli.target import add_target_subcommands

# audit/cli.py's own help for `audit`, repeated here so `jitgrant --help` need not import it
# (tests/cli/test_light_imports.py checks that the two agree).
AUDIT_HELP = "verify and query the audit trail"
RUN_HELP = "run the operator until interrupted"  # cli/run.py's RUN_HELP, likewise


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # only for --version: it is slow

    try:
        return version("jitgrant")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


class _Version(argparse.Action):
    """argparse's version action, with the version looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def build_parser(prog: str = "jitgrant", *, command: str | None = "completion") -> argparse.ArgumentParser:
    """The whole parser. `command`: the word the command line starts with; the flags of `audit` and
    `run` are built only for that command (or `completion`, which describes every flag): their
    modules import the audit trail's cryptography and the operator's settings, which no other
    command needs, and `--help` lists them by their one-line help alone."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Just-in-time, time-boxed RBAC grants for AI agents and automation.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command in ("run", "completion"):
        from jitgrant.cli.run import add_run_subcommand  # settings, logging, notifiers: run's alone

        add_run_subcommand(sub)
    else:
        sub.add_parser("run", help=RUN_HELP)
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
    add_console_subcommand(sub)
    add_target_subcommands(sub)
    if command in ("audit", "completion"):
        from jitgrant.audit.cli import add_audit_subcommands

        add_audit_subcommands(sub)
    else:
        sub.add_parser("audit", help=AUDIT_HELP)
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
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, command=next((word for word in argv if not word.startswith("-")), None))
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
