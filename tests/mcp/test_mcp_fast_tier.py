"""The MCP tools on the fast tier: the server in process with the SDK's own client (in-memory), its
AsyncClient over MockTransport (jitgrant_testing.fakeapi) instead of an API server."""

from __future__ import annotations

from mcp import Client

from jitgrant.client import AsyncClient, Connection, Reason
from jitgrant.client.transport import MockResponse
from jitgrant.lifecycle.dry_run import DryRunAnswer, Outcome
from jitgrant.mcp.server import build_server
from jitgrant_testing.fakeapi import GROUP, FakeApi, access_request, status, warning

RESTART = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": "INC-1 checkout stuck",
}
CREATE = f"POST {GROUP}/namespaces/agents/accessrequests"


def server_over(api: FakeApi) -> Client:
    base = AsyncClient(Connection.for_transport(api.transport, namespace="agents"))
    return Client(build_server(base, pass_through=False))


async def test_check_access_answers_from_the_webhooks_dry_run() -> None:
    answer = DryRunAnswer(Outcome.ALLOWED, Reason.AUTO_APPROVED, "policy prod-restart approves this scope")
    api = FakeApi()
    api.answers[CREATE] = MockResponse(201, json={}, headers=[warning(w) for w in answer.warnings()])
    async with server_over(api) as client:
        result = await client.call_tool("check_access", RESTART)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == "allowed"
    assert result.structured_content["reason"] == "AutoApproved"


async def test_access_status_of_another_agents_request_is_refused_with_next_step() -> None:
    api = FakeApi()
    theirs = access_request("theirs", phase="Pending")
    theirs["spec"]["requester"] = {"username": "someone-else"}
    api.requests["theirs"] = theirs
    async with server_over(api) as client:
        result = await client.call_tool("access_status", {"name": "theirs"})
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "NotRequester: AccessRequest agents/theirs" in text and "list_my_requests" in text, text


async def test_an_api_refusal_becomes_a_tool_error_with_the_servers_message() -> None:
    api = FakeApi()
    api.answers[CREATE] = status(403, 'accessrequests.jitgrant.dev is forbidden: User "x" cannot create')
    async with server_over(api) as client:
        result = await client.call_tool("request_access", {**RESTART, "wait_seconds": 0})
    assert result.is_error
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "cannot create" in text and "jitgrant-requester" in text, text
