"""A real kube-apiserver for the tests in this folder: etcd, kube-apiserver and
kube-controller-manager built from upstream source (tests/kube) and started on 127.0.0.1.

The binaries are built (or reused from the cache) once, after collection and outside any test's
timeout, because the first build takes many minutes. Without a Go toolchain nothing can be built:
every test here is then skipped, and the run says so in one loud line.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jitgrant_testing.controlplane import ControlPlane, ControlPlaneError, ensure_binaries
from jitgrant_testing.environment import EXAMPLES, load_manifests
from jitgrant_testing.realenv import RealEnvironment

HERE = Path(__file__).resolve().parent
NO_GO = shutil.which("go") is None
SKIP_REASON = (
    "tests/realapi SKIPPED: no Go toolchain on PATH, so no kube-apiserver can be built from source "
    "(install Go >= 1.26, or set JITGRANT_KUBE_BIN to prebuilt binaries)"
)
_build: dict[str, object] = {}
_said = {"skip": False}


def _unbuildable() -> bool:
    return NO_GO and "JITGRANT_KUBE_BIN" not in os.environ


def _ours(item: pytest.Item) -> bool:
    return HERE in Path(item.path).parents


def pytest_report_header(config: pytest.Config) -> str | None:
    # Only seen when this conftest is loaded at start-up (pytest tests/realapi); otherwise the
    # terminal summary carries the line.
    if _unbuildable():
        _said["skip"] = True
        return f"!!! {SKIP_REASON} !!!"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _unbuildable():
        return
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _ours(item):
            item.add_marker(marker)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or _unbuildable() or not any(_ours(i) for i in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()
    with capture.global_and_fixture_disabled():
        try:
            _build["bin_dir"] = ensure_binaries(stream=True)
        except ControlPlaneError as err:
            _build["error"] = str(err)
    _build["seconds"] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unbuildable() and not _said["skip"]:
        terminalreporter.write_line(f"!!! {SKIP_REASON} !!!", red=True, bold=True)
    elif "seconds" in _build:
        where = _build.get("bin_dir", "build failed")
        terminalreporter.write_line(
            f"realapi: control plane binaries ready in {_build['seconds']:.1f}s ({where})"
        )


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session."""
    if "error" in _build:
        pytest.fail(f"could not build the control plane: {_build['error']}")
    bin_dir = _build.get("bin_dir")
    plane = ControlPlane(Path(str(bin_dir)) if bin_dir else None)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def real_env(control_plane: ControlPlane) -> Iterator[RealEnvironment]:
    """The chart installed on the real API server and the operator running with its ServiceAccount.

    One per session (the control plane is shared); tests give their requests names of their own.
    """
    env = RealEnvironment(plane=control_plane, sweep_interval=timedelta(seconds=1))
    with env:
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        env.create_deployment("payments", "checkout")
        env.create_deployment("payments", "ledger")
        env.allow_to_request("agents", service_account="oncall-agent")
        yield env
