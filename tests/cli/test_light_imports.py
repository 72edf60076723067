"""`jitgrant --help`, usage errors and completion import neither the Kubernetes client, kopf, boto3
nor the agent client (aiohttp): they cost about a second, and only a command that talks to a
cluster needs them. Each case runs in a fresh interpreter, so a top-level import anywhere on the
parser's path shows up in its sys.modules."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jitgrant.cli.main import build_parser
from jitgrant.cli.parsers import Command

HEAVY = ("kubernetes", "kopf", "boto3", "botocore", "aiohttp")
REQUEST = ("--policy", "p", "--target-namespace", "n", "--cluster-role", "r", "--justification", "j")

# Runs the installed entry point (pyproject: jitgrant = "jitgrant.cli.main:main") and prints which
# heavy packages are loaded once it is done.
PROBE = f"""
import contextlib, io, json, sys
from jitgrant.cli.main import main
sys.argv[0] = "jitgrant"
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))))
"""


def loaded_after(*argv: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(run.stdout)
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("request", "--help"),
        ("release", "--help"),
        ("policies", "--help"),
        ("list", "--help"),
        ("activity", "--help"),
        ("request", "--policy", "p"),  # a usage error: argparse exits before any command runs
        ("completion", "bash"),
        ("--version",),
    ],
    ids=" ".join,
)
def test_the_parser_alone_imports_no_client(argv: tuple[str, ...]) -> None:
    assert loaded_after(*argv) == []


def unreachable_kubeconfig(directory: Path) -> Path:
    kubeconfig = directory / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}],
                "current-context": "x",
            }
        )
    )
    return kubeconfig


def test_the_probe_sees_a_command_that_does_load_the_client(tmp_path: Path) -> None:
    """The check can fail: `request` (which waits with aiohttp, so a watch is cancelled at once) has
    imported the agent client by the time it fails to reach the server."""
    assert "aiohttp" in loaded_after(
        "request", *REQUEST, "--kubeconfig", str(unreachable_kubeconfig(tmp_path))
    )


@pytest.mark.parametrize("command", ["list", "get x", "describe x", "policies", "approve x"])
def test_the_commands_read_the_cluster_without_the_kubernetes_client_kopf_or_boto3(
    command: str, tmp_path: Path
) -> None:
    """The kubeconfig is read by jitgrant.client itself (a token, a CA), and the calls go through
    http.client: importing the Kubernetes client and aiohttp cost a read-only command most of its
    time. The server is unreachable, so each command has tried its first call when the probe looks."""
    loaded = loaded_after(*command.split(), "--kubeconfig", str(unreachable_kubeconfig(tmp_path)))
    assert not set(HEAVY) & set(loaded), loaded


def commands(parser: argparse.ArgumentParser) -> dict[str, object]:
    found: dict[str, object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub.get_default("func")
                found.update({f"{name} {k}": v for k, v in commands(sub).items()})
    return found


def test_every_lazily_named_command_exists() -> None:
    """A typo in parsers.py would otherwise surface only when someone runs that command."""
    lazy = {name: func for name, func in commands(build_parser()).items() if isinstance(func, Command)}
    assert {"list", "get", "approve", "deny", "revoke", "request", "release", "policies", "mcp"} <= set(lazy)
    for name, func in lazy.items():
        assert isinstance(func, Command)
        assert callable(func.load()), name


def test_the_light_audit_entry_says_what_the_audit_commands_say() -> None:
    """`jitgrant --help` lists `audit` without importing audit/cli.py; its line is that module's."""
    from jitgrant.cli.main import AUDIT_HELP

    full = build_parser(command="audit")
    [action] = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    [choice] = [c for c in action._choices_actions if c.dest == "audit"]
    assert choice.help == AUDIT_HELP
    assert "jitgrant.audit.cli" not in loaded_modules_after("--help")


def loaded_modules_after(*argv: str) -> set[str]:
    probe = (
        "import contextlib, io, json, sys\nfrom jitgrant.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(run.stdout))


def test_the_light_run_entry_says_what_run_says() -> None:
    from jitgrant.cli.main import RUN_HELP
    from jitgrant.cli.run import RUN_HELP as OWN

    assert RUN_HELP == OWN
    assert "jitgrant.cli.run" not in loaded_modules_after("--help")
    assert "jitgrant.cli.run" not in loaded_modules_after("list", "--help")
