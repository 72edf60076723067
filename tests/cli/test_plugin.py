"""`kubectl jitgrant ...` as a kubectl plugin, the krew manifest, and what real kubectl shows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from jitgrant_testing.playground import Playground

from .conftest import NS, file_request

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def test_the_krew_manifest_names_the_entry_point_and_the_package_version() -> None:
    manifest = yaml.safe_load((ROOT / "krew" / "jitgrant.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "jitgrant"
    assert manifest["spec"]["version"] == f"v{project['version']}"
    assert project["scripts"]["kubectl-jitgrant"] == "jitgrant.cli.main:kubectl_plugin"
    for platform in manifest["spec"]["platforms"]:
        assert platform["bin"] == "kubectl-jitgrant"
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert project["version"] in platform["uri"]


@needs_kubectl
def test_kubectl_runs_jitgrant_as_a_plugin_and_shows_the_columns(playground: Playground) -> None:
    file_request(playground, "plugin-auto", example="restart-checkout.yaml")
    active = playground.env.wait_for_phase(NS, "plugin-auto", "Active")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["KUBECONFIG"] = str(playground.kubeconfigs["approver"])

    def kubectl(*args: str) -> str:
        run = subprocess.run([str(KUBECTL), *args], capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert kubectl("jitgrant", "--version").startswith("kubectl-jitgrant ")
    assert "accessrequest.jitgrant.dev/plugin-auto" in kubectl("jitgrant", "list", "-o", "name").splitlines()
    # A list (embedkube answers Table for lists), narrowed to the one request.
    one = "--field-selector=metadata.name=plugin-auto"
    table = kubectl("get", "accessrequests", one).splitlines()
    assert table[0].split() == [
        "NAME",
        "PHASE",
        "REQUESTER",
        "POLICY",
        "TARGET",
        "NAMESPACE",
        "EXPIRES",
        "REASON",
        "AGE",
    ]
    # The expiry as a timestamp, never <invalid> (what a date column shows for a time to come).
    assert active["status"]["expiresAt"] in table[1] and "<invalid>" not in table[1]
    assert "JUSTIFICATION" not in table[0]
    wide = kubectl("get", "ar", one, "-o", "wide").splitlines()[0]
    assert wide.split()[-5:] == ["CLUSTER", "ROLE", "DURATION", "JUSTIFICATION", "MESSAGE"]
