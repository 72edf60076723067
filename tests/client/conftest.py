from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jitgrant_testing.agents import Agents, start_environment


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    yield from start_environment(tmp_path)
