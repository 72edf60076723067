"""`jitgrant who-can` and `jitgrant exposure`, offline from files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jitgrant.cli.main import main

POLICIES = """\
apiVersion: jitgrant.dev/v1alpha1
kind: GrantPolicy
metadata: {name: debug}
spec:
  requesters:
    groups: [system:serviceaccounts:agents]
  namespaces: ["*"]
  grants:
    - rules:
        - apiGroups: [""]
          resources: [pods/exec]
          verbs: [create]
  maxDuration: 10m
  approval:
    required: true
    approvers: {groups: [sre]}
    minApprovals: 2
---
apiVersion: jitgrant.dev/v1alpha1
kind: GrantPolicy
metadata: {name: restart}
spec:
  requesters:
    serviceAccounts: [{namespace: agents, name: bot}]
    users: [alice]
  namespaces: [shop]
  grants:
    - clusterRole: restarter
  maxDuration: 15m
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: restarter}
rules:
  - apiGroups: [apps]
    resources: [deployments]
    resourceNames: [web]
    verbs: [get, patch]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text(textwrap.dedent(POLICIES))
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main([*argv, "-o", "json"]) == 0
    parsed: dict[str, object] = json.loads(capsys.readouterr().out)
    return parsed


def routes(capsys: pytest.CaptureFixture[str], repo: Path, *argv: str) -> set[tuple[str, str, int]]:
    found = run_json(capsys, "who-can", *argv, "-f", str(repo))["routes"]
    assert isinstance(found, list)
    return {(r["identity"], r["policy"], r["approval"]["needed"]) for r in found}


def test_who_can_finds_each_requester_and_its_route(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert routes(capsys, repo, "patch", "deployments.apps", "-n", "shop", "--name", "web") == {
        ("system:serviceaccount:agents:bot", "restart", 0),
        ("alice", "restart", 0),
    }


def test_resource_names_group_and_namespace_narrow_the_answer(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert routes(capsys, repo, "patch", "deployments", "--name", "api") == set()  # only web
    assert routes(capsys, repo, "patch", "deployments.batch") == set()  # apps only
    assert routes(capsys, repo, "patch", "deployments", "-n", "other") == set()  # shop only
    assert routes(capsys, repo, "delete", "deployments") == set()  # get, patch only


def test_a_serviceaccount_reaches_a_policy_through_its_namespace_group(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Group system:serviceaccounts:agents is a requester of `debug`; bot is in it, alice is not.
    assert routes(capsys, repo, "create", "pods/exec", "-n", "shop") == {
        ("group:system:serviceaccounts:agents", "debug", 2),
        ("system:serviceaccount:agents:bot", "debug", 2),
    }


def test_a_wildcard_namespace_never_reaches_system_namespaces(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert routes(capsys, repo, "create", "pods/exec", "-n", "kube-system") == set()


def test_exposure_groups_routes_and_marks_danger(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "exposure", "--identity", "system:serviceaccount:agents:bot", "-f", str(repo))
    identities = document["identities"]
    assert isinstance(identities, list) and len(identities) == 1
    bot: dict[str, Any] = identities[0]
    assert bot["identity"] == "system:serviceaccount:agents:bot"
    assert [r["policy"] for r in bot["automatically"]] == ["restart"]
    assert [(r["policy"], r["dangerous"]) for r in bot["withApproval"]] == [("debug", ["pods/exec"])]


def test_exposure_markdown_is_a_report(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exposure", "-f", str(repo), "-o", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Access exposure through GrantPolicies")
    assert "## `alice`" in out
    assert "| approval: 2 of group sre | debug |" in out and "**pods/exec**" in out


def test_the_examples_answer(capsys: pytest.CaptureFixture[str]) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    found = routes(capsys, examples, "patch", "deployments", "-n", "payments", "--name", "checkout")
    agent = "system:serviceaccount:agents:oncall-agent"
    assert (agent, "oncall-restart", 0) in found and (agent, "prod-restart", 1) in found
