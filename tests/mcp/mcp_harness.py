"""The MCP server as agents run it: `jitgrant mcp` in its own process, driven by the SDK's client over
stdio (the agent's kubeconfig) or streamable HTTP (each agent's own bearer token)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from jitgrant.mcp.server import AUDIT_LOG_ENV
from jitgrant_testing.agents import NS, Agents
from jitgrant_testing.environment import free_port
from jitgrant_testing.tls import generate_webhook_tls


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jitgrant.cli.main", "mcp", *args]


def _env(audit_log: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop(AUDIT_LOG_ENV, None)
    if audit_log is not None:  # where access_activity reads, as an MCP client's server config sets it
        env[AUDIT_LOG_ENV] = str(audit_log)
    return env


@asynccontextmanager
async def stdio_agent(kubeconfig: Path, *, audit_log: Path | None = None) -> AsyncIterator[Client]:
    """`jitgrant mcp` on stdio with the agent's own kubeconfig, as an MCP client would start it."""
    command = _command("--kubeconfig", str(kubeconfig))
    params = StdioServerParameters(command=command[0], args=command[1:], env=_env(audit_log))
    async with Client(params, cache=None) as client:
        yield client


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    agents: Agents
    ca_file: Path | None = None

    @asynccontextmanager
    async def agent(self, token: str | None) -> AsyncIterator[Client]:
        """An MCP client that sends `token` (None: no Authorization header) with every request."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if self.ca_file is None:
            http = create_mcp_http_client(headers=headers)
        else:
            http = httpx2.AsyncClient(
                headers=headers,
                verify=ssl.create_default_context(cafile=str(self.ca_file)),
                timeout=httpx2.Timeout(30.0, read=300.0),
            )
        async with http, Client(streamable_http_client(self.url, http_client=http), cache=None) as client:
            yield client


def run_http_server(agents: Agents, tmp_path: Path, *, tls: bool = False) -> Iterator[HttpServer]:
    """`jitgrant mcp --transport http`, whose own kubeconfig is the cluster admin's: a tool call that
    acted as the server instead of the caller would see and do everything, so the tests would notice.
    It reads the embedded API server's audit log for access_activity."""
    env = agents.env
    server_kubeconfig = tmp_path / "server.kubeconfig"
    env.cluster.write_kubeconfig(server_kubeconfig, token=env.cluster.admin_token, namespace=NS)
    port = free_port()
    log = tmp_path / "mcp-http.log"
    args = ["--transport", "http", "--port", str(port), "--kubeconfig", str(server_kubeconfig)]
    ca_file: Path | None = None
    if tls:
        material = generate_webhook_tls(tmp_path / "mcp-tls", hosts=["127.0.0.1"])
        args += ["--tls-cert", str(material.certfile), "--tls-key", str(material.pkeyfile)]
        ca_file = material.cafile
    with log.open("wb") as handle:
        process = subprocess.Popen(
            _command(*args),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_env(agents.env.state_dir / "kube-apiserver-audit.log"),
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
        scheme = "https" if tls else "http"
        yield HttpServer(
            url=f"{scheme}://127.0.0.1:{port}/mcp", process=process, log=log, agents=agents, ca_file=ca_file
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
