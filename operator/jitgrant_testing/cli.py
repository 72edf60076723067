"""The `jitgrant demo` and `jitgrant run --embedded` commands, registered as entry points."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from pathlib import Path


def demo(args: argparse.Namespace) -> int:
    if getattr(args, "examples", None):
        os.environ["JITGRANT_EXAMPLES"] = str(args.examples)
    from jitgrant_testing.demo.scenarios import run_scenarios
    from jitgrant_testing.environment import EXAMPLES

    if not args.list and not (EXAMPLES / "oncall-restart").is_dir():
        # An installed wheel has no checkout: say which directory is missing and how to name it.
        print(
            f"jitgrant demo: no examples directory at {EXAMPLES}; pass --examples PATH, the examples/ "
            "directory of a jitgrant checkout (it holds the policies and ClusterRoles the scenarios apply)",
            file=sys.stderr,
        )
        return 2
    return run_scenarios(args.scenario, list_only=args.list)


def embedded(args: argparse.Namespace) -> int:
    """The playground until Ctrl-C (or `stop`, set by tests), then everything is cleaned up."""
    from jitgrant_testing.playground import Playground

    state_dir = getattr(args, "state_dir", None)
    with Playground(
        state_dir=Path(state_dir) if state_dir else None,
        keep=bool(getattr(args, "keep", False)),
        metrics_port=getattr(args, "metrics_port", None),
        health_port=getattr(args, "health_port", None),
        audit_stdout=True,
    ) as playground:
        print(playground.banner(), flush=True)
        stop: threading.Event = getattr(args, "stop", None) or threading.Event()
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
