"""`jitgrant list|get|approve|deny|revoke` as people use it: each identity with its own kubeconfig,
against the embedded API server with the operator and its webhooks installed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.client import CustomObjectsApi

from embedkube import User
from jitgrant.cli.main import main
from jitgrant_testing.environment import Environment, free_port

from .conftest import jit_bindings, request_manifest, wait_for_phase

NS = "agents"
PROD = "restart-checkout-prod"
STAGING = "restart-checkout"
AGENT = "system:serviceaccount:agents:oncall-agent"
SCOPE = "clusterrole/jit-restart-checkout in payments"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """Runs `jitgrant ...` in-process as one of the identities, by the kubeconfig it holds."""

    env: Environment
    capsys: pytest.CaptureFixture[str]
    kubeconfigs: dict[str, Path]

    def __call__(self, who: str, *args: str) -> Result:
        self.capsys.readouterr()
        code = main([*args, "--kubeconfig", str(self.kubeconfigs[who])])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(env: Environment, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iterator[Cli]:
    env.allow(
        NS,
        role="agent-edit",
        rules=[{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}],
        service_account="oncall-agent",
    )
    env.allow_to_approve(NS, group="sre-oncall")
    tokens = {
        "agent": env.service_account_token(NS, "oncall-agent"),
        "alice": env.cluster.add_user(User(name="alice", uid="uid-alice", groups=("sre-oncall",))),
        "bob": env.cluster.add_user(User(name="bob", uid="uid-bob", groups=("sre-oncall",))),
        "nobody": env.cluster.add_user(User(name="nobody", uid="uid-nobody")),
        "admin": env.cluster.admin_token,
        "expired": "not-a-token-the-server-knows",
    }
    kubeconfigs = {}
    for who, token in tokens.items():
        kubeconfigs[who] = tmp_path / f"{who}.kubeconfig"
        env.cluster.write_kubeconfig(kubeconfigs[who], token=token, namespace=NS)
    yield Cli(env, capsys, kubeconfigs)


def create(env: Environment, name: str, *, policy: str, duration: str = "10m") -> None:
    agent = env.client_for_service_account(NS, "oncall-agent")
    env.create_request(request_manifest(name, policy=policy, duration=duration), client=agent)


def test_list_and_get_show_phase_requester_scope_and_why(env: Environment, cli: Cli) -> None:
    create(env, STAGING, policy="oncall-restart")
    create(env, PROD, policy="prod-restart")
    wait_for_phase(env, NS, STAGING, "Active")
    wait_for_phase(env, NS, PROD, "Pending")

    listed = cli("alice", "list", "-n", NS)
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split() == ["NAME", "PHASE", "REQUESTER", "SCOPE", "APPROVALS", "EXPIRES", "AGE"]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {STAGING, PROD}
    for name, phase in ((STAGING, "Active"), (PROD, "Pending")):
        assert by_name[name].split()[1] == phase
        assert AGENT in by_name[name] and SCOPE in by_name[name]

    # Without -n, the kubeconfig context's namespace, as kubectl does.
    def without_age(text: str) -> list[list[str]]:  # AGE may tick between the two calls
        return [line.split()[:-1] for line in text.splitlines()]

    assert without_age(cli("alice", "list").out) == without_age(listed.out)
    as_json = json.loads(cli("alice", "list", "-o", "json").out)
    assert as_json["kind"] == "List" and as_json["apiVersion"] == "v1"
    assert sorted(item["metadata"]["name"] for item in as_json["items"]) == [STAGING, PROD]

    got = cli("alice", "describe", PROD)
    assert got.code == 0
    assert "Pending" in got.out and SCOPE in got.out
    assert "AwaitingApproval: waiting for 1 approval(s) under policy prod-restart" in got.out


def test_approve_as_the_requester_is_refused_and_an_approver_approves(env: Environment, cli: Cli) -> None:
    create(env, PROD, policy="prod-restart")
    wait_for_phase(env, NS, PROD, "Pending")

    own = cli("agent", "approve", PROD, "--reason", "I checked myself")
    assert own.code == 4
    assert own.err.startswith('error: approval refused: admission webhook "validate-request.jitgrant.dev"')
    assert f"{AGENT} is the requester and cannot approve or deny their own request" in own.err
    assert "jitgrant.dev/approvals" not in (env.get_request(NS, PROD)["metadata"].get("annotations") or {})

    approved = cli("alice", "approve", PROD, "--reason", "INC-1 checked")
    assert approved.code == 0, approved.err
    assert f"AccessRequest {NS}/{PROD}: approval recorded as alice" in approved.out
    wait_for_phase(env, NS, PROD, "Active")
    got = cli("bob", "describe", PROD)
    assert "Active" in got.out
    assert "approved by alice at " in got.out and "(counted): INC-1 checked" in got.out

    late = cli("bob", "approve", PROD)
    assert late.code == 4
    assert "request is Active; decisions are taken only while it is Pending" in late.err
    assert "to end an active grant, annotate jitgrant.dev/revoke=<reason>" in late.err


def test_deny_needs_a_reason_and_ends_the_request(env: Environment, cli: Cli) -> None:
    create(env, PROD, policy="prod-restart")
    wait_for_phase(env, NS, PROD, "Pending")
    no_reason = cli("alice", "deny", PROD)
    assert no_reason.code == 2 and "a denial needs --reason" in no_reason.err
    assert env.get_request(NS, PROD)["status"]["phase"] == "Pending"

    denied = cli("alice", "deny", PROD, "--reason", "not during the freeze")
    assert denied.code == 0, denied.err
    assert "denial recorded as alice" in denied.out
    wait_for_phase(env, NS, PROD, "Denied")
    got = cli("agent", "describe", PROD)
    assert "DeniedByApprover: denied by alice: not during the freeze" in got.out
    assert jit_bindings(env, "payments") == []


def test_revoke_one_and_revoke_all_end_live_grants(env: Environment, cli: Cli) -> None:
    create(env, STAGING, policy="oncall-restart")
    create(env, PROD, policy="prod-restart")
    wait_for_phase(env, NS, STAGING, "Active")

    assert cli("alice", "revoke", STAGING).code == 2
    # oncall-restart is auto-approved and names no approvers: alice (sre-oncall) may patch the request
    # but has no standing to end the agent's grant until the policy names her group.
    refused = cli("alice", "revoke", STAGING, "--reason", "incident closed")
    assert refused.code == 4 and "alice is none of these" in refused.err
    CustomObjectsApi(env.admin).patch_cluster_custom_object(
        "jitgrant.dev",
        "v1alpha1",
        "grantpolicies",
        "oncall-restart",
        {"spec": {"approval": {"approvers": {"groups": ["sre-oncall"]}}}},
    )
    revoked = cli("alice", "revoke", STAGING, "--reason", "incident closed")
    assert revoked.code == 0, revoked.err
    ended = wait_for_phase(env, NS, STAGING, "Revoked")
    assert ended["status"]["message"] == "revoked by alice: incident closed"
    assert jit_bindings(env, "payments") == []
    again = cli("alice", "revoke", STAGING, "--reason", "twice")
    assert again.code == 0 and "has already ended (Revoked); nothing to revoke" in again.out

    # The chart's pre-delete hook: every live request, cluster-wide, and wait until they have ended.
    wait_for_phase(env, NS, PROD, "Pending")
    everything = cli("admin", "revoke", "--all", "--reason", "uninstall", "--wait", "--wait-timeout", "20s")
    assert everything.code == 0, everything.err
    # Only what is live: the already revoked request is left alone.
    assert everything.out.splitlines() == [f"revoking {NS}/{PROD}", f"{NS}/{PROD}: Revoked"]
    # Without cluster-wide rights the hook says what it could not do.
    refused = cli("alice", "revoke", "--all", "--reason", "uninstall")
    assert refused.code == 4 and "cannot list AccessRequests in all namespaces" in refused.err


def test_errors_say_what_went_wrong_and_what_to_do(
    env: Environment, cli: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = cli("alice", "get", "no-such-request")
    assert missing.code == 3
    assert f"AccessRequest {NS}/no-such-request not found; `jitgrant list -n {NS}` shows what exists" in (
        missing.err
    )
    assert cli("alice", "approve", "no-such-request").code == 3

    forbidden = cli("nobody", "list")
    assert forbidden.code == 4
    assert "cannot list AccessRequests in namespace agents: " in forbidden.err
    assert 'accessrequests.jitgrant.dev is forbidden: User "nobody" cannot list' in forbidden.err
    assert "pick a namespace you can read with -n" in forbidden.err

    unauthenticated = cli("expired", "get", PROD)
    assert unauthenticated.code == 4
    assert "did not accept your credentials (401 Unauthorized)" in unauthenticated.err
    assert "refresh it, or pass another with --kubeconfig" in unauthenticated.err

    nowhere = tmp_path / "nowhere.kubeconfig"
    config = env.cluster.kubeconfig(token="x", namespace=NS)
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    nowhere.write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["list", "--kubeconfig", str(nowhere)]) == 4
    err = capsys.readouterr().err
    assert "cannot reach the API server at https://127.0.0.1:" in err
    assert "check that the cluster is up and that --kubeconfig (or KUBECONFIG) points at it" in err

    assert main(["list", "--kubeconfig", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_prod_approval_demo_passes_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    """`jitgrant demo --scenario prod-approval`: every step checked against the cluster."""
    assert main(["demo", "--scenario", "prod-approval"]) == 0
    out = capsys.readouterr().out
    assert "=== scenario prod-approval: every step checked against the cluster" in out
