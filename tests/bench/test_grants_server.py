"""bench/grants.py --server real finds `make kube`'s binaries without building, or says so and stops.

`make bench` lets exactly exit status 3 pass (no binaries) and fails on any other error, so the
status and the one loud line are checked here; the measurements themselves assert nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jitgrant_testing.controlplane import BINARIES, BUILD_SCRIPT, cached_binaries

REPO = Path(__file__).resolve().parents[2]
VERSION = next(
    line.split()[1]
    for line in (BUILD_SCRIPT.parent / "go.mod").read_text().splitlines()
    if line.split()[:1] == ["k8s.io/kubernetes"]
)


def _binaries(directory: Path, *, executable: bool = True) -> None:
    directory.mkdir(parents=True)
    for name in BINARIES:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755 if executable else 0o644)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("JITGRANT_KUBE_BIN", raising=False)
    monkeypatch.setenv("JITGRANT_KUBE_CACHE", str(tmp_path / "kube"))
    return tmp_path / "kube"


def test_the_pinned_versions_cache_directory_is_found(cache: Path) -> None:
    assert cached_binaries() is None
    _binaries(cache / VERSION)
    assert cached_binaries() == cache / VERSION


def test_another_versions_binaries_are_not_used(cache: Path) -> None:
    _binaries(cache / "v1.0.0")
    assert cached_binaries() is None


def test_a_missing_or_non_executable_binary_means_none(cache: Path) -> None:
    _binaries(cache / VERSION, executable=False)
    assert cached_binaries() is None
    for name in BINARIES:
        (cache / VERSION / name).chmod(0o755)
    (cache / VERSION / "kube-apiserver").unlink()
    assert cached_binaries() is None


def test_prebuilt_binaries_named_by_the_environment_win(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prebuilt = cache.parent / "prebuilt"
    _binaries(prebuilt)
    monkeypatch.setenv("JITGRANT_KUBE_BIN", str(prebuilt))
    assert cached_binaries() == prebuilt


def test_server_real_without_binaries_says_so_loudly_and_exits_3(cache: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "grants.py"), "--server", "real", "--quick"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""  # no table: nothing was measured
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("!!! ") and "make kube" in lines[0]
