"""`jitgrant --help`, usage errors and completion import neither the Kubernetes client, kopf, boto3
nor the agent client (aiohttp): they cost about a second, and only a command that talks to a
cluster needs them. Each case runs in a fresh interpreter, so a top-level import anywhere on the
parser's path shows up in its sys.modules."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from jitgrant.cli.main import build_parser
from jitgrant.cli.parsers import Command

HEAVY = ("kubernetes", "kopf", "boto3", "botocore", "aiohttp")

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


def test_the_probe_sees_a_command_that_does_load_the_client() -> None:
    """The check can fail: a command that runs (and fails for want of a kubeconfig) has imported
    the Kubernetes client by then."""
    assert "kubernetes" in loaded_after("list", "--kubeconfig", "/nonexistent")


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
