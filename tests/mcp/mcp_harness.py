"""The MCP server as agents run it: `jitgrant mcp` in its own process, driven by the SDK's client over
stdio (the agent's kubeconfig) or streamable HTTP (each agent's own bearer token)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from jitgrant_testing.agents import NS, Agents
from jitgrant_testing.environment import free_port


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jitgrant.cli.main", "mcp", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@asynccontextmanager
async def stdio_agent(kubeconfig: Path) -> AsyncIterator[Client]:
    """`jitgrant mcp` on stdio with the agent's own kubeconfig, as an MCP client would start it."""
    command = _command("--kubeconfig", str(kubeconfig))
    params = StdioServerParameters(command=command[0], args=command[1:], env=_env())
    async with Client(params, cache=None) as client:
        yield client


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    agents: Agents
    _tokens: dict[str, str] = field(default_factory=dict)

    @asynccontextmanager
    async def agent(self, token: str | None) -> AsyncIterator[Client]:
        """An MCP client that sends `token` (None: no Authorization header) with every request."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(self.url, http_client=http), cache=None) as client,
        ):
            yield client


def run_http_server(agents: Agents, tmp_path: Path) -> Iterator[HttpServer]:
    """`jitgrant mcp --transport http`, whose own kubeconfig is the cluster admin's: a tool call that
    acted as the server instead of the caller would see and do everything, so the tests would notice."""
    env = agents.env
    server_kubeconfig = tmp_path / "server.kubeconfig"
    env.cluster.write_kubeconfig(server_kubeconfig, token=env.cluster.admin_token, namespace=NS)
    port = free_port()
    log = tmp_path / "mcp-http.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            _command("--transport", "http", "--port", str(port), "--kubeconfig", str(server_kubeconfig)),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jitgrant mcp did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield HttpServer(url=f"http://127.0.0.1:{port}/mcp", process=process, log=log, agents=agents)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
