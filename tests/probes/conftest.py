"""Build (or reuse) the real control plane's binaries once, after collection and outside any test's
timeout, as tests/realapi does; without a Go toolchain the fidelity probes are skipped and the run
says so in one loud line."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from jitgrant_testing.controlplane import ControlPlaneError, ensure_binaries

HERE = Path(__file__).resolve().parent
SKIP_REASON = (
    "tests/probes SKIPPED: no Go toolchain on PATH and no JITGRANT_KUBE_BIN, so there is no real "
    "kube-apiserver to compare the embedded one with"
)
BUILD: dict[str, object] = {}


def unbuildable() -> bool:
    return shutil.which("go") is None and "JITGRANT_KUBE_BIN" not in os.environ


def pytest_collection_finish(session: pytest.Session) -> None:
    ours = any(HERE in Path(item.path).parents for item in session.items)
    if session.config.option.collectonly or unbuildable() or not ours:
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()
    with capture.global_and_fixture_disabled():
        try:
            BUILD["bin_dir"] = ensure_binaries(stream=True)
        except ControlPlaneError as err:
            BUILD["error"] = str(err)
    BUILD["seconds"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if unbuildable():
        terminalreporter.write_line(f"!!! {SKIP_REASON} !!!", red=True, bold=True)
