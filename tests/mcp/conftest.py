from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_harness import HttpServer, run_http_server

from jitgrant_testing.agents import Agents, start_environment


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    yield from start_environment(tmp_path)


@pytest.fixture
def http_server(agents: Agents, tmp_path: Path) -> Iterator[HttpServer]:
    yield from run_http_server(agents, tmp_path)
