"""Issue 24 §7: errors that name the value and the fix. A KUBECONFIG naming no file, a kubeconfig
without contexts or without a current-context are usage errors (exit 2) saying so; a certificate the
kubeconfig's CA does not vouch for is "not trusted", not "check that the cluster is up"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jitgrant_testing.playground import Playground

COMMANDS = [("list",), ("policies",), ("get", "x")]


def jitgrant(*args: str, kubeconfig: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    return subprocess.run(
        [sys.executable, "-m", "jitgrant.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_kubeconfig_variable_naming_no_file_says_so(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = str(tmp_path / "nonexistent")
    done = jitgrant(*command, kubeconfig=missing)
    assert done.returncode == 2, done.stderr
    assert f"KUBECONFIG={missing}: no such file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_kubeconfig_without_contexts_says_so(tmp_path: Path, command: tuple[str, ...]) -> None:
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    done = jitgrant(*command, kubeconfig=str(empty))
    assert done.returncode == 2, done.stderr
    assert f"{empty} has no contexts" in done.stderr and "None" not in done.stderr


def test_a_kubeconfig_without_current_context_names_the_contexts_and_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "two"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "c", "user": "u"}},
                    {"name": "prod", "context": {"cluster": "c", "user": "u"}},
                ],
            }
        )
    )
    done = jitgrant("list", kubeconfig=str(config))
    assert done.returncode == 2, done.stderr
    assert "sets no current-context" in done.stderr and "--context NAME (contexts: dev, prod)" in done.stderr


@pytest.mark.parametrize("command", [("list",), ("policies",)])
def test_an_untrusted_certificate_is_named_as_such(
    playground: Playground, tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = yaml.safe_load(playground.kubeconfigs["admin"].read_text())
    for cluster in config["clusters"]:
        cluster["cluster"].pop("certificate-authority-data", None)
        cluster["cluster"].pop("certificate-authority", None)
    untrusting = tmp_path / "untrusting"
    untrusting.write_text(yaml.safe_dump(config))
    done = jitgrant(*command, kubeconfig=str(untrusting))
    assert done.returncode == 4, done.stderr
    assert "certificate that is not trusted" in done.stderr, done.stderr
    assert "certificate-authority-data" in done.stderr and "check that the cluster is up" not in done.stderr
