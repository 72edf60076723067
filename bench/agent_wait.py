"""What an agent waiting for approval costs and how fast it hears about it, against the embedded cluster.

- latency: from an approver's approval (the annotation the `jitgrant approve` command writes, sent
  the moment the agent reports pending) to the MCP progress notification that leaves pending, through
  `jitgrant mcp` on stdio driven by the SDK's client; p50 and p90 over --rounds requests.
- calls: the API requests (calls and watch connections) one `AsyncClient.wait` makes while a request
  stays pending for --wait-seconds (default 600: the issue's 10-minute wait), next to what the old
  0.5 s poll made in the same time.

Run: PYTHONPATH=operator python bench/agent_wait.py [--rounds 10] [--wait-seconds 600]
Prints figures only; nothing here is a test (timings depend on the machine and on the neighbours).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kubernetes.client import ApiClient, CustomObjectsApi
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from jitgrant.client import AccessTimedOut, AsyncClient
from jitgrant_testing.agents import NS, REASON, Agents, start_environment

RESTART = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
    "duration": "10m",
}


async def latency(agents: Agents, rounds: int) -> list[float]:
    env = agents.env
    alice = env.client_for_user("alice", groups=("sre-oncall",))
    command = [sys.executable, "-m", "jitgrant.cli.main", "mcp", "--kubeconfig", str(agents.kubeconfig())]
    params = StdioServerParameters(
        command=command[0], args=command[1:], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    async with Client(params, cache=None) as client:
        return [await one_round(client, agents, alice) for _ in range(rounds)]


async def one_round(client: Client, agents: Agents, alice: ApiClient) -> float:
    """One request: approve when the agent reports pending; seconds until it hears it left pending."""
    env = agents.env
    pending, left = asyncio.Event(), asyncio.Event()
    marks: dict[str, float] = {}

    async def progress(value: float, total: float | None, message: str | None) -> None:
        if (message or "").startswith("pending approval"):
            pending.set()
        elif pending.is_set() and not left.is_set():
            marks["notified"] = time.monotonic()
            left.set()

    async def approve() -> None:
        await pending.wait()
        name = _newest(agents)
        marks["approved"] = time.monotonic()
        await asyncio.to_thread(env.annotate_request, NS, name, {"jitgrant.dev/approve": "ok"}, client=alice)

    approver = asyncio.create_task(approve())
    result = await client.call_tool(
        "request_access", {**RESTART, "wait_seconds": 60}, progress_callback=progress
    )
    await approver
    await client.call_tool("release_access", {"name": (result.structured_content or {}).get("name")})
    return marks["notified"] - marks["approved"]


def _newest(agents: Agents) -> str:
    items = CustomObjectsApi(agents.env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )["items"]
    live = [i for i in items if (i.get("status") or {}).get("phase") == "Pending"]
    return str(live[-1]["metadata"]["name"])


async def calls_while_pending(agents: Agents, seconds: float) -> int:
    async with AsyncClient.from_kubeconfig(agents.kubeconfig()) as client:
        filed = await client.request(
            policy="prod-restart",
            namespace="payments",
            cluster_role="jit-restart-checkout",
            duration="10m",
            justification=REASON,
        )
        before = client.api_calls
        with contextlib.suppress(AccessTimedOut):
            await client.wait(filed.metadata.name, timeout=seconds)
        calls = client.api_calls - before
        await client.release(filed.metadata.name)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--wait-seconds", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jitgrant-bench-") as directory:
        for agents in start_environment(Path(directory)):
            figures = asyncio.run(latency(agents, args.rounds))
            ordered = sorted(figures)
            print(
                f"approve -> MCP progress notification: p50 {statistics.median(ordered) * 1000:.0f} ms, "
                f"p90 {ordered[int(0.9 * (len(ordered) - 1))] * 1000:.0f} ms, "
                f"max {ordered[-1] * 1000:.0f} ms over {len(ordered)} requests"
            )
            calls = asyncio.run(calls_while_pending(agents, args.wait_seconds))
            print(
                f"API requests during a {args.wait_seconds:.0f} s wait: {calls} "
                f"(the 0.5 s poll it replaces: {int(args.wait_seconds / 0.5)})"
            )


if __name__ == "__main__":
    main()
