"""`jitgrant demo` from an install without a checkout names the missing directory and the flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_missing_examples_directory_is_named_with_the_flag_that_fixes_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-examples"
    env = {**os.environ, "JITGRANT_EXAMPLES": str(missing)}
    result = subprocess.run(
        [sys.executable, "-m", "jitgrant.cli.main", "demo", "--scenario", "oncall-restart"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert str(missing) in result.stderr and "--examples PATH" in result.stderr
    assert "Traceback" not in result.stderr
