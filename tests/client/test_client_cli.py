"""The agent's commands on the client's path: request --dry-run, policies, release."""

from __future__ import annotations

import json

import pytest
from kubernetes.client import CustomObjectsApi

from jitgrant.cli.main import main
from jitgrant_testing.agents import AGENT, NS, OTHER, REASON, Agents

ASK = ["--policy", "prod-restart", "--target-namespace", "payments", "--cluster-role", "jit-restart-checkout"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_dry_run_files_nothing_and_exits_10_when_it_would_be_denied(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(agents.kubeconfig())
    code, out, err = run(
        capsys, "request", *ASK, "--justification", REASON, "--dry-run", "--kubeconfig", kubeconfig
    )
    assert (code, out.strip()) == (0, "pending-approval"), err
    assert "AwaitingApproval: needs 1 approval(s) from groups sre-oncall" in err
    code, out, err = run(
        capsys,
        "request",
        *ASK,
        "--justification",
        "no ticket",
        "--for",
        "2h",
        "--dry-run",
        "--kubeconfig",
        kubeconfig,
    )
    assert (code, out.strip()) == (10, "denied"), err
    assert "maxDuration 15m" in err and "does not match policy prod-restart's pattern" in err
    stored = CustomObjectsApi(agents.env.admin).list_namespaced_custom_object(
        "jitgrant.dev", "v1alpha1", NS, "accessrequests"
    )
    assert stored["items"] == []


def test_policies_lists_what_the_agent_may_request(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "policies", "-o", "json", "--kubeconfig", str(agents.kubeconfig()))
    assert code == 0, err
    assert {entry["policy"] for entry in json.loads(out)} == {"oncall-restart", "prod-restart"}
    code, out, _ = run(capsys, "policies", "--kubeconfig", str(agents.kubeconfig()))
    assert "prod-restart: jit-restart-checkout in payments on in-cluster; up to 15m" in out
    assert "1 approval(s) from groups sre-oncall" in out


def test_release_ends_your_grant_and_refuses_someone_elses(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(agents.kubeconfig())
    ask = ["--policy", "oncall-restart", *ASK[2:]]
    code, out, err = run(
        capsys, "request", *ask, "--justification", REASON, "--wait", "--kubeconfig", kubeconfig
    )
    assert code == 0, err
    name = out.strip()
    code, _, err = run(capsys, "release", name, "--kubeconfig", str(agents.kubeconfig(OTHER)))
    assert code == 4 and "filed by another identity" in err
    code, out, err = run(capsys, "release", name, "--reason", "done", "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert f"{NS}/{name}: Revoked: Released by requester system:serviceaccount:{NS}:{AGENT}: done" in out
    code, _, err = run(capsys, "release", "no-such-request", "--kubeconfig", kubeconfig)
    assert code == 3 and "does not exist" in err
