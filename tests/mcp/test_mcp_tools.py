"""The MCP tools through the SDK's own client: a scripted agent end to end, progress notifications,
errors a model can act on, and two agents who can never see, wait on or release each other's request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from mcp import Client
from mcp_harness import HttpServer, stdio_agent

from jitgrant_testing.agents import AGENT, NS, OTHER, REASON, Agents

RESTART: dict[str, Any] = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
    "duration": "10m",
}


async def call(client: Client, tool: str, arguments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments, **kwargs)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


async def scripted_agent(client: Client, agents: Agents) -> dict[str, float]:
    """list_grantable -> check_access -> request_access (an approver approves meanwhile) -> use the
    grant -> release_access. Returns the approve-to-notification latency."""
    env = agents.env
    found = await call(client, "list_grantable", {})
    names = {p["policy"]: p for p in found["policies"]}
    assert names["prod-restart"]["approval"]["approver_groups"] == ["sre-oncall"]

    check = await call(client, "check_access", RESTART)
    assert check["outcome"] == "pending-approval" and "groups sre-oncall" in check["approvers"]

    alice = env.client_for_user("alice", groups=("sre-oncall",))
    notes: list[tuple[float, str]] = []
    approved_at: list[float] = []
    pending = asyncio.Event()

    async def progress(value: float, total: float | None, message: str | None) -> None:
        notes.append((time.monotonic(), message or ""))
        if (message or "").startswith("pending approval"):
            pending.set()

    async def approver() -> None:
        await pending.wait()
        name = env.get_request(NS, _pending_name(agents))["metadata"]["name"]
        approved_at.append(time.monotonic())
        await asyncio.to_thread(
            env.annotate_request, NS, name, {"jitgrant.dev/approve": "looked"}, client=alice
        )

    approving = asyncio.create_task(approver())
    active = await call(client, "request_access", {**RESTART, "wait_seconds": 60}, progress_callback=progress)
    await approving
    assert active["phase"] == "Active" and active["expires_at"] and active["scope"].startswith("ClusterRole")
    texts = [text for _, text in notes]
    assert "pending approval: 1 more approval(s) needed (0 of 1)" in texts, texts
    assert texts[-1].startswith("active until"), texts
    after = [at for at, text in notes if not text.startswith("pending")]
    latency = after[0] - approved_at[0]

    # The grant works for the agent's own identity, then release_access takes it back.
    agent_api = env.client_for_service_account(NS, AGENT)
    env.restart_deployment("payments", "checkout", client=agent_api)
    released = await call(client, "release_access", {"name": active["name"], "reason": "task done"})
    assert released["phase"] == "Revoked" and released["reason"] == "Released"
    with pytest.raises(ApiException):
        env.restart_deployment("payments", "checkout", client=agent_api)
    mine = await call(client, "list_my_requests", {})
    assert [r["name"] for r in mine["requests"]] == [active["name"]]
    # Filed as the agent itself (over HTTP: its token, not the server's admin kubeconfig).
    stored = env.get_request(NS, active["name"])
    assert stored["spec"]["requester"]["username"] == f"system:serviceaccount:{NS}:{AGENT}"
    return {"latency": latency}


def _pending_name(agents: Agents) -> str:
    from kubernetes.client import CustomObjectsApi

    items = CustomObjectsApi(agents.env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )["items"]
    return str(items[-1]["metadata"]["name"])


async def test_a_scripted_agent_over_stdio(agents: Agents) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        measured = await scripted_agent(client, agents)
    assert measured["latency"] < 1.0, measured


async def test_a_scripted_agent_over_http_with_its_own_token(agents: Agents, http_server: HttpServer) -> None:
    async with http_server.agent(agents.token(AGENT)) as client:
        measured = await scripted_agent(client, agents)
    assert measured["latency"] < 1.0, measured


async def test_http_refuses_a_call_without_the_agents_own_token(http_server: HttpServer) -> None:
    async with http_server.agent(None) as client:
        text = await refusal(client, "list_my_requests", {})
    assert "NotAuthenticated" in text and "Authorization: Bearer" in text


async def test_one_agent_never_sees_waits_on_or_releases_anothers_request(
    agents: Agents, http_server: HttpServer
) -> None:
    async with (
        http_server.agent(agents.token(AGENT)) as mine,
        http_server.agent(agents.token(OTHER)) as theirs,
    ):
        filed = await call(mine, "request_access", {**RESTART, "wait_seconds": 0})
        name = filed["name"]
        assert filed["phase"] in (None, "Pending")
        assert (await call(theirs, "list_my_requests", {}))["requests"] == []
        for tool, arguments in (
            ("access_status", {"name": name}),
            ("access_status", {"name": name, "wait_seconds": 5}),
            ("release_access", {"name": name}),
        ):
            text = await refusal(theirs, tool, arguments)
            assert "NotRequester" in text and "list_my_requests" in text
            # Nothing of the other request (requester, scope, phase) is shown, only the name asked for.
            assert AGENT not in text and "payments" not in text and "Pending" not in text
        # Over stdio, with the other agent's own kubeconfig, the same.
        async with stdio_agent(agents.kubeconfig(OTHER)) as theirs_stdio:
            text = await refusal(theirs_stdio, "release_access", {"name": name})
            assert "NotRequester" in text
        still = await call(mine, "access_status", {"name": name})
        assert still["phase"] == "Pending"


async def test_errors_say_what_was_refused_and_what_to_do(agents: Agents) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        denied = await call(client, "check_access", {**RESTART, "policy": "oncall-restart", "duration": "2h"})
        assert denied["outcome"] == "denied" and "maxDuration 15m" in denied["message"]
        both = await refusal(
            client,
            "request_access",
            {**RESTART, "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]},
        )
        assert "exactly one of cluster_role" in both and "list_grantable" in both
        missing = await refusal(client, "access_status", {"name": "nope"})
        assert "RequestNotFound" in missing and "list_my_requests" in missing
        quick = await call(client, "request_access", {**RESTART, "wait_seconds": 1})
        assert quick["phase"] == "Pending" and "access_status" in quick["next_step"]
        await call(client, "release_access", {"name": quick["name"]})


async def test_an_agent_without_policy_read_access_is_told_which_role_it_lacks(agents: Agents) -> None:
    env = agents.env
    env.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "jitgrant-requester-lonely", "namespace": NS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "jitgrant-requester",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "lonely-agent", "namespace": NS}],
            }
        ]
    )
    async with stdio_agent(agents.kubeconfig("lonely-agent")) as client:
        text = await refusal(client, "list_grantable", {})
    assert "APIRefused" in text and "jitgrant-policy-reader" in text and "forbidden" in text.lower()
