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

Command = Callable[[argparse.Namespace], int]
INSTALL_HINT = "pip install 'jitgrant[demo]'"


def run_plugin(name: str, args: argparse.Namespace) -> int:
    """Run the entry point `name` of group `jitgrant.commands`, or explain how to install it."""
    found = [ep for ep in entry_points(group="jitgrant.commands") if ep.name == name]
    if not found:
        print(f"jitgrant: '{name}' is not installed; install it with: {INSTALL_HINT}", file=sys.stderr)
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
