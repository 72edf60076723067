"""`who-can` and `exposure` against the embedded cluster give the answers they give from the files
that cluster was set up from, and exposure shows what an identity holds right now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jitgrant_testing.environment import EXAMPLES
from jitgrant_testing.playground import Playground

from .conftest import NS, Cli, file_request

# What the playground applies (jitgrant_testing/playground.py).
APPLIED = [EXAMPLES / "oncall-restart", EXAMPLES / "prod-approval"]
AGENT = "system:serviceaccount:agents:oncall-agent"


def _files(paths: list[Path]) -> list[str]:
    return [flag for path in paths for flag in ("-f", str(path))]


def _routes(out: str) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = json.loads(out)["routes"]
    # The cluster holds the chart's ClusterRoles too; only the policies' routes are compared.
    return sorted(routes, key=lambda r: (r["identity"], r["policy"], r["grant"]))


def test_who_can_from_the_cluster_equals_who_can_from_the_files(cli: Cli) -> None:
    ask = ["who-can", "patch", "deployments.apps", "-n", "payments", "--name", "checkout", "-o", "json"]
    live = cli("admin", *ask)
    offline = cli(None, *ask, *_files(APPLIED))
    assert live.code == 0 and offline.code == 0, live.err + offline.err
    assert _routes(live.out) == _routes(offline.out)
    assert {(r["identity"], r["policy"]) for r in _routes(live.out)} == {
        (AGENT, "oncall-restart"),
        (AGENT, "prod-restart"),
    }


def test_exposure_from_the_cluster_shows_routes_and_active_grants(playground: Playground, cli: Cli) -> None:
    file_request(playground, "exposed", example="restart-checkout.yaml")
    playground.env.wait_for_phase(NS, "exposed", "Active")
    live = cli("admin", "exposure", "--identity", AGENT, "-o", "json")
    assert live.code == 0, live.err
    (agent,) = json.loads(live.out)["identities"]
    assert [r["policy"] for r in agent["automatically"]] == ["oncall-restart"]
    assert [r["policy"] for r in agent["withApproval"]] == ["prod-restart"]
    assert [(g["request"], g["policy"]) for g in agent["activeNow"]] == [(f"{NS}/exposed", "oncall-restart")]

    offline = json.loads(cli(None, "exposure", "--identity", AGENT, "-o", "json", *_files(APPLIED)).out)
    (from_files,) = offline["identities"]
    assert from_files["automatically"] == agent["automatically"]
    assert from_files["withApproval"] == agent["withApproval"]


def test_who_can_refused_by_the_cluster_says_so(cli: Cli) -> None:
    # The agent may read GrantPolicies but not list ClusterRoles: a refusal, exit 4, not a wrong answer.
    result = cli("agent", "who-can", "get", "pods")
    assert result.code == 4
    assert "clusterroles" in result.err
