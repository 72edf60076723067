"""access_activity through the SDK's own client: what an agent did with its grant, from the embedded
API server's audit log, and never another agent's."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException
from mcp_harness import HttpServer, stdio_agent
from test_mcp_tools import call, refusal

from jitgrant_testing.agents import AGENT, NS, OTHER, REASON, Agents

RESTART: dict[str, Any] = {
    "policy": "oncall-restart",
    "namespace": "payments",
    "cluster_role": "jit-restart-checkout",
    "justification": REASON,
    "duration": "10m",
    "wait_seconds": 30,
}
AGENT_USER = f"system:serviceaccount:{NS}:{AGENT}"


def _restart(agents: Agents, who: str, deployment: str) -> int:
    """The agent's own `kubectl rollout restart`: the HTTP status the API server answered."""
    api = agents.env.client_for_service_account(NS, who)
    try:
        agents.env.restart_deployment("payments", deployment, client=api)
    except ApiException as exc:
        return int(exc.status)
    return 200


async def test_an_agent_sees_what_it_did_and_another_agent_sees_nothing_of_it(
    agents: Agents, http_server: HttpServer
) -> None:
    agents.env.create_deployment("payments", "ledger")
    async with (
        http_server.agent(agents.token(AGENT)) as mine,
        http_server.agent(agents.token(OTHER)) as theirs,
    ):
        active = await call(mine, "request_access", RESTART)
        assert active["phase"] == "Active"
        name = active["name"]
        assert _restart(agents, AGENT, "checkout") == 200
        assert _restart(agents, AGENT, "ledger") == 403

        seen = await call(mine, "access_activity", {"name": name})
        assert seen["request"] == f"{NS}/{name}" and seen["identities"] == [AGENT_USER]
        calls = [(c["verb"], c["name"], c["code"], c["outcome"], c["attribution"]) for c in seen["calls"]]
        assert ("patch", "checkout", 200, "allowed by this grant", "authorization-reason") in calls
        assert ("patch", "ledger", 403, "refused", "identity-window") in calls
        assert [c for c in calls if c[3] == "allowed by this grant"] == [
            ("patch", "checkout", 200, "allowed by this grant", "authorization-reason")
        ]
        assert seen["counts"]["refused"] == 1

        # The other agent, over HTTP with its own token: refused, and told nothing of the request.
        text = await refusal(theirs, "access_activity", {"name": name})
        assert "NotRequester" in text and "list_my_requests" in text
        assert AGENT not in text and "payments" not in text and "checkout" not in text
        # Over stdio with its own kubeconfig and the same audit log on its disk: the same.
        async with stdio_agent(
            agents.kubeconfig(OTHER), audit_log=agents.env.state_dir / "kube-apiserver-audit.log"
        ) as theirs_stdio:
            text = await refusal(theirs_stdio, "access_activity", {"name": name})
        assert "NotRequester" in text and AGENT not in text

        # Its own grant's activity holds its own calls only, none of the first agent's.
        own = await call(
            theirs, "access_activity", {"name": (await call(theirs, "request_access", RESTART))["name"]}
        )
        assert own["identities"] == [f"system:serviceaccount:{NS}:{OTHER}"]
        assert all(c["user"] != AGENT_USER for c in own["calls"])
        await call(theirs, "release_access", {"name": own["request"].split("/")[1]})
        await call(mine, "release_access", {"name": name})


async def test_the_tool_is_described_for_a_model_and_says_when_it_has_no_log(agents: Agents) -> None:
    async with stdio_agent(agents.kubeconfig()) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        tool = tools["access_activity"]
        assert tool.input_schema["required"] == ["name"]
        assert tool.output_schema is not None
        assert {"calls", "counts", "window", "roleBinding"} <= set(tool.output_schema["properties"])
        assert "refused" in (tool.description or "") and "your own" in (tool.description or "")
        filed = await call(client, "request_access", RESTART)
        # Started without JITGRANT_ACTIVITY_AUDIT_LOG (or an EKS cluster): says so, and who can fix it.
        text = await refusal(client, "access_activity", {"name": filed["name"]})
        assert "ActivityUnavailable" in text and "JITGRANT_ACTIVITY_AUDIT_LOG" in text
        await call(client, "release_access", {"name": filed["name"]})


async def test_a_request_that_never_had_a_grant_is_said_to_have_made_no_calls(
    agents: Agents, http_server: HttpServer
) -> None:
    async with http_server.agent(agents.token(AGENT)) as client:
        pending = await call(
            client, "request_access", {**RESTART, "policy": "prod-restart", "wait_seconds": 0}
        )
        text = await refusal(client, "access_activity", {"name": pending["name"]})
        assert "NoGrant" in text and "access_status" in text
        await call(client, "release_access", {"name": pending["name"]})


def test_jitgrant_mcp_takes_the_activity_source_flags_jitgrant_activity_takes(tmp_path: Any) -> None:
    from jitgrant.activity.files import AuditLogFiles
    from jitgrant.cli.main import build_parser
    from jitgrant.mcp.server import activity_source_from

    args = build_parser().parse_args(["mcp", "--audit-log", str(tmp_path / "audit.log")])
    source = activity_source_from(args, environ={})
    assert isinstance(source, AuditLogFiles)
    assert activity_source_from(build_parser().parse_args(["mcp"]), environ={}) is None
    # One source only, as for `jitgrant activity`.
    try:
        build_parser().parse_args(["mcp", "--audit-log", "a", "--eks-cluster", "b"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("--audit-log and --eks-cluster together were accepted")
