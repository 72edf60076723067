"""The `jitgrant demo` and `jitgrant run --embedded` commands, registered as entry points."""

from __future__ import annotations

import argparse
import contextlib
import os
import threading


def demo(args: argparse.Namespace) -> int:
    if getattr(args, "examples", None):
        os.environ["JITGRANT_EXAMPLES"] = str(args.examples)
    from jitgrant_testing.demo.scenarios import run_scenarios

    return run_scenarios(args.scenario, list_only=args.list)


def embedded(args: argparse.Namespace) -> int:
    from jitgrant_testing.environment import Environment

    with Environment(audit_stdout=True) as env:
        path = env.state_dir / "kubeconfig.yaml"
        env.cluster.write_kubeconfig(path, token=env.cluster.admin_token)
        print(f"embedded cluster at {env.cluster.url}; admin kubeconfig: {path}")
        print(f"audit trail: {env.audit_file}; press Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0
