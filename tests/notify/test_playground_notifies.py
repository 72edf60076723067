"""Issue 24 §6: `jitgrant run --embedded --notify-config FILE` notifies as `jitgrant run` does, so
notifications can be tried locally (the playground used to ignore every `run` flag)."""

from __future__ import annotations

import argparse
import re
import threading
import time
from pathlib import Path

import pytest

from jitgrant.client import Client
from jitgrant_testing.cli import embedded

from .receiver import receiver


def test_the_playground_posts_to_the_notifiers_of_notify_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with receiver() as got:
        config = tmp_path / "notify.yaml"
        config.write_text(
            f"notifiers:\n  - name: hook\n    type: webhook\n    url: {got.url}\n    events: [pending]\n"
        )
        stop = threading.Event()
        args = argparse.Namespace(
            state_dir=None,
            keep=False,
            metrics_port=None,
            health_port=None,
            stop=stop,
            notify_config=config,
            inline_rules=False,
            sweep_interval=5,
            audit_config=None,
        )
        outcome: list[int] = []
        runner = threading.Thread(target=lambda: outcome.append(embedded(args)))
        runner.start()
        try:
            deadline = time.monotonic() + 60
            banner = ""
            while "press Ctrl-C to stop" not in banner and time.monotonic() < deadline:
                banner += capsys.readouterr().out
                time.sleep(0.1)
            found = re.search(r"^  agent\s+(\S+)", banner, re.M)
            assert found is not None, banner
            with Client.from_kubeconfig(found.group(1)) as agent:
                filed = agent.request(
                    policy="prod-restart",
                    namespace="payments",
                    cluster_role="jit-restart-checkout",
                    justification="INC-1 checkout stuck",
                    duration="10m",
                )
            pending = got.wait_for(lambda body: body["event"] == "pending")
            assert pending["request"]["name"] == filed.metadata.name
        finally:
            stop.set()
            runner.join(timeout=60)
    assert outcome == [0]


def test_a_bad_notify_config_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text("notifiers:\n  - name: hook\n    type: pager\n")
    args = argparse.Namespace(state_dir=None, keep=False, notify_config=config)
    assert embedded(args) == 2
    err = capsys.readouterr().err
    assert f"--notify-config {config}" in err and "type" in err
