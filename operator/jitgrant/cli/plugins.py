"""Commands that live outside the product package: the demo and the embedded playground.

They ship in `jitgrant_testing`, which needs the `demo` extra (an embedded API server, moto). The
product finds them through the `jitgrant.commands` entry-point group instead of importing them, so
the operator never depends on its own test harness, and a plain install says how to get them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from importlib.util import find_spec

Command = Callable[[argparse.Namespace], int]
INSTALL_HINT = "pip install 'jitgrant[demo]'"
#: What the demo extra adds that the commands import only once they run (the embedded API server's
#: schema and CEL checks, the AWS stand-ins, the MCP client): checked before the command starts, so a
#: plain install gets the hint instead of a traceback from deep inside the command.
DEMO_MODULES = ("jsonschema", "celpy", "moto", "boto3", "mcp")


def run_plugin(name: str, args: argparse.Namespace) -> int:
    """Run the entry point `name` of group `jitgrant.commands`, or explain how to install it."""
    found = [ep for ep in entry_points(group="jitgrant.commands") if ep.name == name]
    if not found:
        print(f"jitgrant: '{name}' is not installed; install it with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    missing = next((module for module in DEMO_MODULES if find_spec(module) is None), None)
    if missing is not None:
        print(
            f"jitgrant: '{name}' needs the demo extra ({missing} is missing); "
            f"install it with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    try:
        command: Command = found[0].load()
    except ImportError as exc:
        print(
            f"jitgrant: '{name}' needs the demo extra ({exc.name or exc} is missing); "
            f"install it with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    return command(args)
