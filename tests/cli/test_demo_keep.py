"""Issue 24 §7: `jitgrant demo --keep` keeps the state directory (kubeconfigs, audit trail) and says
where; without it nothing is left behind."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from jitgrant.cli.main import main
from jitgrant_testing import environment


@pytest.fixture(autouse=True)
def _restore_keep() -> object:
    yield
    environment.KEEP_STATE_DIRS = False


@pytest.mark.timeout(300)
def test_demo_keep_keeps_the_state_directory_and_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "oncall-restart", "--keep"]) == 0
    err = capsys.readouterr().err
    found = re.search(r"kept the state directory (\S+)", err)
    assert found is not None, err
    kept = Path(found.group(1))
    try:
        assert kept.is_dir() and any(kept.iterdir()), kept
    finally:
        shutil.rmtree(kept, ignore_errors=True)


@pytest.mark.timeout(300)
def test_demo_without_keep_leaves_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "oncall-restart"]) == 0
    assert "kept the state directory" not in capsys.readouterr().err
