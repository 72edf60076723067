"""The `jitgrant demo` and `jitgrant run --embedded` commands, registered as entry points."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from jitgrant.notify import NotifyConfig


def demo(args: argparse.Namespace) -> int:
    if getattr(args, "examples", None):
        os.environ["JITGRANT_EXAMPLES"] = str(args.examples)
    if getattr(args, "keep", False):
        from jitgrant_testing import environment

        environment.KEEP_STATE_DIRS = True
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
    notify_path = getattr(args, "notify_config", None)
    try:
        notify_config = NotifyConfig.from_file(Path(notify_path)) if notify_path else None
    except (OSError, ValueError) as exc:
        print(f"error: --notify-config {notify_path}: {exc}", file=sys.stderr)
        return 2
    sweep = getattr(args, "sweep_interval", None)
    with Playground(
        state_dir=Path(state_dir) if state_dir else None,
        keep=bool(getattr(args, "keep", False)),
        metrics_port=getattr(args, "metrics_port", None),
        health_port=getattr(args, "health_port", None),
        audit_stdout=True,
        notify_config=notify_config,
        inline_rules=bool(getattr(args, "inline_rules", False)),
        sweep_interval=timedelta(seconds=sweep) if sweep else None,
        audit_config=getattr(args, "audit_config", None),
    ) as playground:
        stop: threading.Event = getattr(args, "stop", None) or threading.Event()
        # Set up before the banner: whoever reads it may stop the playground at once.
        with contextlib.suppress(KeyboardInterrupt), _stopped_by_sigterm(stop):
            print(playground.banner(), flush=True)
            stop.wait()
    return 0


@contextlib.contextmanager
def _stopped_by_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (kill, a service manager, a container runtime) ends the playground as Ctrl-C does:
    the cluster and operator stop and the temporary state directory with its tokens is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; tests stop it through `stop`
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
