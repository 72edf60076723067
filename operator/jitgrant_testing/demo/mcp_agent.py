"""`jitgrant demo --scenario mcp-agent`: an agent that knows nothing of Kubernetes objects gets, uses and
gives back its access only through MCP tools.

The agent starts `jitgrant mcp` on stdio with its own kubeconfig and drives it with the MCP SDK's own
client, as an agent framework would: it asks what it may request, checks a request that would be
denied and one that needs a human, files it and hears each step as a progress notification while an
approver approves with `jitgrant approve`, does its task, and releases the grant the moment it is done.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from embedkube import User
from jitgrant_testing.agents import AGENT, APPROVER_GROUP, NS, REASON, Agents, start_environment
from jitgrant_testing.demo.scenarios import Reporter, _print_audit, register

APPROVER = "alice"
ASK: dict[str, Any] = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
    "duration": "10m",
}


def mcp_agent(report: Reporter) -> None:
    """An agent works only through MCP: discover, dry-run, request with live progress, use, release."""
    with tempfile.TemporaryDirectory(prefix="jitgrant-mcp-demo-") as directory:
        for agents in start_environment(Path(directory)):
            asyncio.run(_story(report, agents))


async def _story(report: Reporter, agents: Agents) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    env = agents.env
    report.step(
        f"The agent starts `jitgrant mcp` on stdio with its own kubeconfig (ServiceAccount {NS}/{AGENT})"
    )
    command = [sys.executable, "-m", "jitgrant.cli.main", "mcp", "--kubeconfig", str(agents.kubeconfig())]
    params = StdioServerParameters(
        command=command[0], args=command[1:], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    async with Client(params, cache=None) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        report.check(
            tools
            == [
                "access_activity",
                "access_status",
                "check_access",
                "extend_access",
                "list_grantable",
                "list_my_requests",
                "release_access",
                "request_access",
            ],
            f"the server offers {', '.join(tools)}",
        )

        report.step("list_grantable: what may I ask for?")
        grantable = await _call(client, "list_grantable", {})
        for policy in grantable["policies"]:
            approval = policy["approval"]
            who = (
                f"{approval['min_approvals']} approval(s) from {approval['approver_groups']}"
                if approval["required"]
                else "no approval"
            )
            report.note(
                f"{policy['policy']}: {policy['cluster_roles']} in {policy['namespaces']}, "
                f"up to {policy['max_duration']}, {who}"
            )
        report.check(
            {p["policy"] for p in grantable["policies"]} == {"oncall-restart", "prod-restart"},
            "both example policies name the agent",
        )

        report.step("check_access (dry run): two hours, then ten minutes in production")
        too_long = await _call(client, "check_access", {**ASK, "duration": "2h"})
        report.note(f"{too_long['outcome']}: {too_long['reason']}: {too_long['message']}")
        report.check(
            too_long["outcome"] == "denied" and "maxDuration 15m" in too_long["message"],
            "2h would be denied, and the answer says the maximum",
        )
        pending = await _call(client, "check_access", ASK)
        report.note(f"{pending['outcome']}: {pending['message']}")
        report.check(
            pending["outcome"] == "pending-approval" and "sre-oncall" in (pending["approvers"] or ""),
            "10m would wait for one approval from sre-oncall",
        )
        report.check(
            not env.audit_file.exists() or "requested" not in env.audit_file.read_text(),
            "nothing was filed or audited for either check",
        )

        report.step(
            "request_access: the agent files and waits; alice approves with `jitgrant approve` meanwhile"
        )
        approver_kubeconfig = Path(env.state_dir) / "alice.kubeconfig"
        env.cluster.write_kubeconfig(
            approver_kubeconfig,
            token=env.cluster.add_user(User(name=APPROVER, uid="uid-alice", groups=(APPROVER_GROUP,))),
            namespace=NS,
        )
        heard: list[tuple[float, str]] = []
        waiting = asyncio.Event()

        async def progress(value: float, total: float | None, message: str | None) -> None:
            heard.append((time.monotonic(), message or ""))
            report.note(f"progress: {message}")
            if (message or "").startswith("pending approval"):
                waiting.set()

        async def approve() -> tuple[float, str]:
            await waiting.wait()
            name = await _pending_name(client)
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jitgrant.cli.main",
                "approve",
                name,
                "-n",
                NS,
                "--reason",
                "checked the incident",
                "--kubeconfig",
                str(approver_kubeconfig),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
            output, _ = await process.communicate()
            return started, output.decode()

        approver = asyncio.create_task(approve())
        active = await _call(
            client, "request_access", {**ASK, "wait_seconds": 120}, progress_callback=progress
        )
        started, output = await approver
        for line in output.splitlines():
            report.note(f"alice $ jitgrant approve ...: {line}")
        report.check(
            active["phase"] == "Active",
            f"{active['name']} is active until {active['expires_at']}: {active['scope']}",
        )
        after = [at for at, text in heard if not text.startswith(("pending", "waiting"))]
        report.note(
            "from `jitgrant approve` starting (a new process) to the agent hearing of it: "
            f"{(after[0] - started) * 1000:.0f} ms"
        )

        report.step("The agent does its task: a rollout restart of payments/checkout, as itself")
        agent_api = env.client_for_service_account(NS, AGENT)
        env.restart_deployment("payments", "checkout", client=agent_api)
        report.check(True, "the restart went through under the grant")

        report.step("release_access: done, so the agent gives the access back at once")
        released = await _call(client, "release_access", {"name": active["name"], "reason": "restart done"})
        report.note(f"{released['phase']} ({released['reason']}): {released['message']}")
        report.check(
            released["phase"] == "Revoked" and released["reason"] == "Released",
            "recorded as Released by the requester, not as a revoke",
        )
        report.check(env.jit_bindings("payments") == [], "no jitgrant RoleBinding is left in payments")
        try:
            env.restart_deployment("payments", "checkout", client=agent_api)
            refused = False
        except ApiException as exc:
            refused = exc.status == 403
        report.check(
            refused, "a second restart is refused (403): the access is gone, minutes before its expiry"
        )
        mine = await _call(client, "list_my_requests", {})
        report.check(
            [r["name"] for r in mine["requests"]] == [active["name"]],
            "list_my_requests shows the one request",
        )
        uid = env.get_request(NS, active["name"])["metadata"]["uid"]
        records = _print_audit(env, report, uid, expected=6)
        report.check(
            any(str(r["event"].get("reason") or "").startswith("Released by requester") for r in records),
            "the audit trail records the release and who released",
        )


async def _call(client: Any, tool: str, arguments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments, **kwargs)
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        raise AssertionError(f"{tool} failed: {text}")
    structured: dict[str, Any] = result.structured_content or {}
    return structured


async def _pending_name(client: Any) -> str:
    mine = await _call(client, "list_my_requests", {})
    return str(next(r["name"] for r in mine["requests"] if r["phase"] == "Pending"))


register("mcp-agent", mcp_agent)
