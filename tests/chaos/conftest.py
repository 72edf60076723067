"""The chaos harness for the bounded subsets `make test` runs (run_chaos.py is also a script)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_chaos  # type: ignore[import-not-found]


@pytest.fixture
def harness() -> Iterator[tuple[Any, Any, Any, Any]]:
    with run_chaos.environment() as (env, workdir):
        bench = run_chaos.Bench(env, workdir)
        watcher = run_chaos.Watcher(env).start()
        try:
            yield env, workdir, bench, watcher
        finally:
            watcher.stop()
