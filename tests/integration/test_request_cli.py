"""`jitgrant request` as an agent runs it: a real process, its own kubeconfig, the operator deciding.

Each outcome has its own exit code, so an agent can branch without parsing text; the reason from
status is printed either way. The command runs as a subprocess so the exit codes are the process's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jitgrant.cli.main import main
from jitgrant_testing.environment import Environment

from .conftest import jit_bindings, wait_until

NS = "agents"
REASON = "INC-4711 checkout pods stuck"


@dataclass
class Agent:
    """Runs `jitgrant request` as ServiceAccount agents/oncall-agent, in its own process."""

    kubeconfig: Path
    directory: Path

    def start(self, *args: str) -> tuple[subprocess.Popen[str], Path]:
        """Start the command; its stderr goes to a file the test can read while it waits."""
        err = self.directory / f"stderr-{len(list(self.directory.glob('stderr-*')))}.txt"
        with err.open("w") as handle:  # the child holds its own descriptor
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jitgrant.cli.main",
                    "request",
                    *args,
                    "--kubeconfig",
                    str(self.kubeconfig),
                ],
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        return process, err

    def run(self, *args: str) -> tuple[int, str, str]:
        process, err = self.start(*args)
        out, _ = process.communicate(timeout=60)
        return process.returncode, out, err.read_text()


@pytest.fixture
def agent(env: Environment, tmp_path: Path) -> Iterator[Agent]:
    kubeconfig = tmp_path / "agent.kubeconfig"
    env.cluster.write_kubeconfig(
        kubeconfig, token=env.service_account_token(NS, "oncall-agent"), namespace=NS
    )
    yield Agent(kubeconfig=kubeconfig, directory=tmp_path)


def restart(policy: str = "oncall-restart", *extra: str, namespace: str = "payments") -> list[str]:
    return [
        "--policy",
        policy,
        "--target-namespace",
        namespace,
        "--cluster-role",
        "jit-restart-checkout",
        "--justification",
        REASON,
        *extra,
    ]


def test_active_exits_0_prints_the_name_and_says_until_when(env: Environment, agent: Agent) -> None:
    out_file = agent.directory / "unused.kubeconfig"
    code, out, err = agent.run(
        *restart("oncall-restart", "--for", "30s", "--wait", "--kubeconfig-out", str(out_file))
    )
    assert code == 0, err
    name = out.strip()
    obj = env.get_request(NS, name)
    assert name.startswith("oncall-restart-") and obj["status"]["phase"] == "Active"
    assert f"filed AccessRequest {NS}/{name} as system:serviceaccount:agents:oncall-agent" in err
    assert f"active until {obj['status']['expiresAt']}" in err
    assert [b["metadata"]["annotations"]["jitgrant.dev/request"] for b in jit_bindings(env, "payments")] == [
        f"{NS}/{name}"
    ]
    # The agent has an identity of its own in the cluster: nothing to deliver, nothing written.
    assert "no kubeconfig was issued" in err and not out_file.exists()


def test_without_wait_it_files_and_exits_0_with_rules_as_typed(env: Environment, agent: Agent) -> None:
    code, out, err = agent.run(
        "--policy",
        "oncall-restart",
        "--target-namespace",
        "payments",
        "--rule",
        "apiGroups=apps,resources=deployments,verbs=get;patch,resourceNames=checkout",
        "--rule",
        "apiGroups=,resources=pods,verbs=list",
        "--justification",
        REASON,
        "--name",
        "by-rules",
    )
    assert (code, out.strip()) == (0, "by-rules"), err
    assert env.get_request(NS, "by-rules")["spec"]["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["get", "patch"],
            "resourceNames": ["checkout"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    ]


def test_denied_by_the_policy_exits_10_with_the_reason(agent: Agent) -> None:
    code, _, err = agent.run(*restart("oncall-restart", "--wait", namespace="orders"))
    assert code == 10, err
    assert "denied: PolicyRefused:" in err and "orders" in err


def test_denied_by_an_approver_while_waiting_exits_10(env: Environment, agent: Agent) -> None:
    env.allow_to_approve(NS, group="sre-oncall")
    alice = env.client_for_user("alice", groups=("sre-oncall",))
    process, err = agent.start(*restart("prod-restart", "--name", "prod-1", "--wait"))
    wait_until(
        lambda: "pending approval: 1 more approval(s) needed (0 of 1)" in err.read_text(),
        what="the CLI to show the missing approval",
    )
    env.annotate_request(NS, "prod-1", {"jitgrant.dev/deny": "use the runbook"}, client=alice)
    process.communicate(timeout=30)
    assert process.returncode == 10, err.read_text()
    assert "denied: DeniedByApprover: denied by alice: use the runbook" in err.read_text()


def test_progress_counts_approvals_until_quorum_then_exits_0(env: Environment, agent: Agent) -> None:
    env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "prod-restart-two"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "approval": {
                        "required": True,
                        "approvers": {"groups": ["sre-oncall"]},
                        "minApprovals": 2,
                    },
                },
            }
        ]
    )
    env.allow_to_approve(NS, group="sre-oncall")
    process, err = agent.start(*restart("prod-restart-two", "--name", "two", "--wait"))
    wait_until(lambda: "2 more approval(s) needed (0 of 2)" in err.read_text(), what="0 of 2")
    for approver in ("alice", "bob"):
        client = env.client_for_user(approver, groups=("sre-oncall",))
        env.annotate_request(NS, "two", {"jitgrant.dev/approve": "checked"}, client=client)
        if approver == "alice":
            wait_until(
                lambda: "1 more approval(s) needed (1 of 2); approved by alice" in err.read_text(),
                what="1 of 2",
            )
    process.communicate(timeout=30)
    assert process.returncode == 0, err.read_text()
    assert "active until" in err.read_text()


def test_pending_timeout_exits_11(env: Environment, agent: Agent) -> None:
    env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "prod-restart-quick"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                    "approval": {
                        "required": True,
                        "approvers": {"groups": ["sre-oncall"]},
                        "pendingTimeout": "2s",
                    },
                },
            }
        ]
    )
    code, _, err = agent.run(*restart("prod-restart-quick", "--wait"))
    assert code == 11, err
    assert "timed out: PendingTimeout: no decision within the policy's pendingTimeout of 2s" in err


def test_wait_timeout_exits_11_and_the_request_stays_filed(env: Environment, agent: Agent) -> None:
    code, _, err = agent.run(*restart("prod-restart", "--name", "prod-2", "--wait", "--wait-timeout", "2s"))
    assert code == 11, err
    assert "gave up waiting after 2s; AccessRequest agents/prod-2 is still Pending and stays filed" in err
    assert env.get_request(NS, "prod-2")["status"]["phase"] == "Pending"


def test_failed_exits_12_with_the_reason(env: Environment, agent: Agent) -> None:
    env.apply(
        [
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "GrantPolicy",
                "metadata": {"name": "eks-restart"},
                "spec": {
                    "requesters": {"serviceAccounts": [{"namespace": NS, "name": "oncall-agent"}]},
                    "target": {
                        "type": "EKS",
                        "eks": {
                            "clusterName": "prod-eu",
                            "region": "eu-west-1",
                            "roleArn": "arn:aws:iam::111122223333:role/jitgrant-target",
                        },
                    },
                    "namespaces": ["payments"],
                    "grants": [{"clusterRole": "jit-restart-checkout"}],
                },
            }
        ]
    )
    code, _, err = agent.run(*restart("eks-restart", "--wait"))
    assert code == 12, err
    assert (
        "failed: EKSNotConfigured: policy targets EKS cluster prod-eu, but this operator has no EKS access"
        in err
    )


def test_revoked_before_it_was_used_exits_13(env: Environment, agent: Agent) -> None:
    process, err = agent.start(*restart("prod-restart", "--name", "prod-3", "--wait"))
    wait_until(lambda: "pending approval" in err.read_text(), what="the request to be pending")
    env.annotate_request(NS, "prod-3", {"jitgrant.dev/revoke": "incident closed"}, client=env.admin)
    process.communicate(timeout=30)
    assert process.returncode == 13, err.read_text()
    assert "revoked before it could be used: Revoked: revoked by " in err.read_text()
    assert "incident closed" in err.read_text()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--rule", "apiGroups=apps,resources=deployments"],
            "--rule 'apiGroups=apps,resources=deployments': verbs missing; expected --rule "
            "'apiGroups=apps,resources=deployments,verbs=get;patch[,resourceNames=checkout]'",
        ),
        (
            ["--rule", "apiGroups=apps,resources=deployments,verb=get"],
            "unknown key 'verb' (known: apiGroups,",
        ),
        (["--rule", "apps,deployments"], "part 'apps' is not key=value; expected --rule"),
        (
            ["--rule", "apiGroups=apps,resources=deployments,verbs=get;;patch"],
            "verbs='get;;patch' has an empty item",
        ),
        (
            ["--cluster-role", "r", "--for", "10x"],
            "--for: duration '10x' is not of the form 1h30m, 15m or 90s",
        ),
        (["--cluster-role", "r", "--kubeconfig-out", "k"], "--kubeconfig-out needs --wait"),
        (
            ["--cluster-role", "r", "--oidc-token-file", "/nonexistent/token"],
            "--oidc-token-file /nonexistent/token:",
        ),
    ],
)
def test_bad_input_exits_2_saying_what_and_the_expected_form(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["request", "--policy", "p", "--target-namespace", "payments", "--justification", REASON, *args]
    )
    assert code == 2
    assert expected in capsys.readouterr().err


def test_cluster_role_and_rule_together_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "request",
                "--policy",
                "p",
                "--target-namespace",
                "n",
                "--justification",
                "r",
                "--cluster-role",
                "x",
                "--rule",
                "y",
            ]
        )
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
