"""Issue 24 §3: argument errors an agent can act on, through the SDK's own client over stdio.

Every bad argument is a tool error in the domain errors' shape (reason, field, what was given, what
is accepted, an example, next step), never "Error executing tool X" alone nor pydantic's dump;
unknown arguments are refused (additionalProperties: false); the tools carry titles and annotations.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp_harness import stdio_agent

from jitgrant_testing.agents import REASON, Agents

RESTART: dict[str, Any] = {
    "policy": "prod-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
}
READ_ONLY = {"list_grantable", "check_access", "access_status", "list_my_requests", "access_activity"}


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


def assert_actionable(text: str, *, field: str, given: str, example: str) -> None:
    assert "InvalidRequest" in text, text
    assert f"{field}: got {given}" in text, text
    assert "accepted:" in text and example in text and "Next:" in text, text
    assert "pydantic" not in text and "validation error" not in text, text


async def test_the_tools_have_titles_annotations_and_closed_input_schemas(agents: Agents) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == READ_ONLY | {"request_access", "release_access", "extend_access"}
    for name, tool in tools.items():
        assert tool.title, name
        assert tool.input_schema.get("additionalProperties") is False, (name, tool.input_schema)
        assert tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
    release = tools["release_access"].annotations
    assert release is not None and release.destructive_hint is True and release.idempotent_hint is True
    request = tools["request_access"].annotations
    assert request is not None and request.destructive_hint is False
    rule = tools["request_access"].input_schema["$defs"]["RuleInput"]
    assert rule.get("additionalProperties") is False and "api_groups" in rule["properties"]


@pytest.mark.parametrize(
    ("tool", "arguments", "field", "given", "example"),
    [
        ("request_access", {"duration": "10 minutes"}, "duration", "'10 minutes'", "10m"),
        ("check_access", {"duration": "10 minutes"}, "duration", "'10 minutes'", "10m"),
        ("request_access", {"duration": 600}, "duration", "600", "10m"),
        ("check_access", {"duration": 600}, "duration", "600", "10m"),
        ("request_access", {"wait_seconds": "soon"}, "wait_seconds", "'soon'", "300"),
        ("request_access", {"wait_seconds": -1}, "wait_seconds", "-1", "300"),
        ("request_access", {"durtion": "10m"}, "durtion", "'10m'", "inputSchema"),
        ("check_access", {"justification": 42}, "justification", "42", "INC-4711"),
        ("request_access", {"rules": [{"verbs": ["get"]}], "cluster_role": None}, "rules", "", "api_groups"),
    ],
)
async def test_a_bad_argument_is_a_tool_error_naming_it_and_nothing_is_filed(
    agents: Agents, tool: str, arguments: dict[str, Any], field: str, given: str, example: str
) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        text = await refusal(client, tool, {**RESTART, **arguments})
        assert_actionable(text, field=field, given=given, example=example)
        mine = await client.call_tool("list_my_requests", {})
        assert mine.structured_content == {"requests": []}


async def test_both_cluster_role_and_rules_is_refused_in_the_same_shape(agents: Agents) -> None:
    rules = [{"api_groups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    async with stdio_agent(agents.kubeconfig()) as client:
        text = await refusal(client, "request_access", {**RESTART, "rules": rules})
    assert "InvalidRequest" in text and "exactly one of cluster_role" in text and "Next:" in text
    assert "list_grantable" in text


async def test_list_grantable_speaks_snake_case_like_the_inputs(agents: Agents) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        result = await client.call_tool("list_grantable", {})
    assert result.structured_content is not None
    policy = next(p for p in result.structured_content["policies"] if p["policy"] == "prod-restart")
    assert policy["cluster_roles"] == ["jit-restart-checkout"] and "max_duration" in policy
    assert policy["approval"]["approver_groups"] == ["sre-oncall"]
    assert not any(key[0].islower() and any(c.isupper() for c in key) for key in policy)
