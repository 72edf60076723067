"""Issue 24 §2: `jitgrant run` without its webhook flags is refused before anything starts, naming
the flags and the supported ways to run it (not kopf's "no admission server" and a traceback)."""

from __future__ import annotations

import subprocess
import sys


def test_run_without_webhook_flags_names_them_and_the_ways_to_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jitgrant.cli.main", "run", "--kubeconfig", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert "--webhook-port PORT --webhook-cert CERT --webhook-key KEY" in err
    assert "helm install jitgrant charts/jitgrant" in err and "out of the cluster" in err
    assert "jitgrant run --embedded" in err
    assert "Traceback" not in err and "admission server" not in err
