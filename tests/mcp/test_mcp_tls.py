"""Over HTTP the agents' bearer tokens never travel in clear text beyond loopback: HTTPS with
--tls-cert/--tls-key, and a refusal to listen elsewhere without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from mcp_harness import HttpServer, run_http_server

from jitgrant.cli.main import main
from jitgrant_testing.agents import AGENT, Agents


@pytest.fixture
def https_server(agents: Agents, tmp_path: Path) -> Iterator[HttpServer]:
    yield from run_http_server(agents, tmp_path, tls=True)


async def test_the_tools_work_over_https_and_plain_http_gets_no_answer(
    agents: Agents, https_server: HttpServer
) -> None:
    async with https_server.agent(agents.token(AGENT)) as client:
        result = await client.call_tool("list_grantable", {})
    assert not result.is_error and result.structured_content is not None
    assert {p["policy"] for p in result.structured_content["policies"]} == {"oncall-restart", "prod-restart"}
    async with httpx2.AsyncClient() as plain:
        with pytest.raises(httpx2.HTTPError):
            await plain.post(https_server.url.replace("https://", "http://"), json={})


def test_listening_beyond_loopback_without_tls_is_refused(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["mcp", "--transport", "http", "--host", "0.0.0.0", "--kubeconfig", str(agents.kubeconfig())])
    assert code == 2
    assert "bearer tokens in clear text; pass --tls-cert/--tls-key" in capsys.readouterr().err
