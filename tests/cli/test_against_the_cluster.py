"""The CLI as kubectl users expect it, against the embedded cluster with the operator running:
impersonation that really changes who acts, merged KUBECONFIG, selectors, output formats, watch,
the approver's view and `list --pending`, and the printer columns `kubectl get` shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jitgrant.cli.exitcodes import ExitCode
from jitgrant.cli.requests import _wait_until_ended
from jitgrant.client import Connection
from jitgrant.client.people import PeopleClient
from jitgrant.models.crd import all_crds
from jitgrant_testing.playground import Playground

from .conftest import NS, Cli, file_request

AGENT = "system:serviceaccount:agents:oncall-agent"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def phase(playground: Playground, name: str) -> str | None:
    found: str | None = (playground.env.get_request(NS, name).get("status") or {}).get("phase")
    return found


def test_as_really_acts_as_the_impersonated_user(playground: Playground, cli: Cli, tmp_path: Path) -> None:
    file_request(playground, "imp-prod")
    playground.env.wait_for_phase(NS, "imp-prod", "Pending")

    # The admin kubeconfig with --as: the webhook records alice, not the admin.
    approved = cli(
        "admin", "approve", "imp-prod", "--as", "alice", "--as-group", "sre-oncall", "--reason", "ok"
    )
    assert approved.code == 0, approved.err
    assert f"AccessRequest {NS}/imp-prod: approval recorded as alice at " in approved.out
    playground.env.wait_for_phase(NS, "imp-prod", "Active")

    # The admin may list; as nobody the same kubeconfig may not: the identity really changed.
    assert cli("admin", "list").code == 0
    refused = cli("admin", "list", "--as", "nobody")
    assert refused.code == 4 and 'User "nobody" cannot list' in refused.err

    # `as:` in the kubeconfig's user is honoured too (kubectl's impersonation settings).
    config = yaml.safe_load(cli.kubeconfig("admin").read_text())
    config["users"][0]["user"]["as"] = "nobody"
    as_nobody = tmp_path / "as-nobody.kubeconfig"
    as_nobody.write_text(yaml.safe_dump(config))
    assert 'User "nobody" cannot list' in cli(None, "list", "--kubeconfig", str(as_nobody)).err

    # Impersonating needs the `impersonate` verb: alice (an approver) cannot act as the admin.
    escalation = cli("approver", "list", "--as", "system:admin", "--as-group", "system:masters")
    assert escalation.code == 4
    assert 'User "alice" cannot impersonate' in escalation.err


def test_kubeconfig_paths_merge_and_the_first_file_s_context_is_used(
    playground: Playground, cli: Cli, monkeypatch: Any
) -> None:
    file_request(playground, "merge-prod")
    playground.env.wait_for_phase(NS, "merge-prod", "Pending")
    approver, admin = cli.kubeconfig("approver"), cli.kubeconfig("admin")
    monkeypatch.setenv("KUBECONFIG", f"{approver}{os.pathsep}{admin}")
    pending = cli(None, "list", "--pending", "-o", "name")
    assert pending.code == 0, pending.err
    assert "accessrequest.jitgrant.dev/merge-prod" in pending.out.splitlines()


def test_selectors_output_formats_and_the_approver_s_view(playground: Playground, cli: Cli) -> None:
    file_request(playground, "sel-a", labels={"team": "payments"})
    file_request(playground, "sel-b", labels={"team": "orders"})
    file_request(playground, "sel-auto", example="restart-checkout.yaml", labels={"team": "payments"})
    playground.env.wait_for_phase(NS, "sel-a", "Pending")
    playground.env.wait_for_phase(NS, "sel-auto", "Active")

    named = cli("approver", "list", "-l", "team=payments", "-o", "name")
    assert sorted(named.out.splitlines()) == [
        "accessrequest.jitgrant.dev/sel-a",
        "accessrequest.jitgrant.dev/sel-auto",
    ]
    phases = cli(
        "approver",
        "list",
        "-l",
        "team",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}:{.status.phase} {end}",
    )
    assert set(phases.out.split()) == {"sel-a:Pending", "sel-b:Pending", "sel-auto:Active"}
    as_yaml = yaml.safe_load(cli("approver", "get", "sel-a", "-o", "yaml").out)
    assert as_yaml["metadata"]["name"] == "sel-a" and as_yaml["spec"]["requester"]["username"] == AGENT
    wide = cli("approver", "list", "-l", "team=orders", "-o", "wide").out.splitlines()
    assert wide[0].split()[-3:] == ["POLICY", "REASON", "JUSTIFICATION"]
    assert "prod-restart" in wide[1] and "AwaitingApproval" in wide[1]

    # What waits for alice: the Pending prod requests, not the auto-approved one.
    pending = cli("approver", "list", "--pending", "-l", "team").out
    assert "sel-a" in pending and "sel-b" in pending and "sel-auto" not in pending
    # Never the requester's own, even when the requester is in the approvers' group.
    as_requester = cli("admin", "list", "--pending", "--as", AGENT, "--as-group", "sre-oncall", "-l", "team")
    assert as_requester.out.strip() == "No AccessRequests found.", as_requester.err

    row = cli("approver", "get", "sel-a")  # kubectl's habit: get prints rows, describe the prose
    assert row.code == 0 and row.out.split()[:2] == ["NAME", "PHASE"], row.out
    assert row.out.splitlines()[1].split()[:2] == ["sel-a", "Pending"], row.out
    got = cli("approver", "describe", "sel-a")
    assert got.code == 0, got.err
    for line in (
        f"Requester:      {AGENT}",
        "Justification:  INC-4712 checkout p99 latency",
        "Policy:         prod-restart",
        "Namespace:      payments (where the grant lands)",
        "ClusterRole:    jit-restart-checkout",
        "  - get,patch on deployments (apps) named checkout",
        "Approvals:      0 of 1, 1 missing (approvers: groups sre-oncall)",
    ):
        assert line in got.out, got.out
    assert "\x1b[" not in got.out  # not a terminal: no colour codes
    # -o on a command that changes an object prints the object as changed (here: the recorded approval).
    approved = cli("approver", "approve", "sel-a", "--reason", "ok", "-o", "jsonpath={.metadata.name}")
    assert (approved.code, approved.out) == (0, "sel-a"), approved.err
    assert "sel-a" not in cli("approver", "list", "--pending", "-l", "team").out


def test_watch_prints_each_change_until_the_request_timeout(playground: Playground, cli: Cli) -> None:
    file_request(playground, "watched")
    playground.env.wait_for_phase(NS, "watched", "Pending")
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jitgrant.cli.main",
            "get",
            "watched",
            "--watch",
            "--request-timeout",
            "6s",
            "-o",
            'jsonpath={.status.phase}{"\\n"}',
            "--kubeconfig",
            str(cli.kubeconfig("approver")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # printed once the watcher has read the request
        assert cli("approver", "approve", "watched", "--reason", "ok").code == 0
        rest, err = watcher.communicate(timeout=30)
        out = first + rest
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "Pending" and lines[-1] == "Active", lines
    assert "Approved" in lines or "Active" in lines[1:]


def test_printer_columns_through_a_table_request(playground: Playground) -> None:
    file_request(playground, "table-auto", example="restart-checkout.yaml")
    active = playground.env.wait_for_phase(NS, "table-auto", "Active")
    admin = playground.env.admin

    def table(path: str) -> dict[str, Any]:
        response = admin.call_api(
            path,
            "GET",
            header_params={"Accept": TABLE},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        result: dict[str, Any] = json.loads(response.data)
        return result

    requests = table(f"/apis/jitgrant.dev/v1alpha1/namespaces/{NS}/accessrequests")
    columns = {c["name"]: c for c in requests["columnDefinitions"]}
    default = [c["name"] for c in requests["columnDefinitions"] if c["priority"] == 0]
    assert default == ["Name", "Phase", "Requester", "Policy", "Target Namespace", "Expires", "Reason", "Age"]
    assert [n for n, c in columns.items() if c["priority"] == 1] == [
        "Cluster Role",
        "Duration",
        "Justification",
        "Message",
    ]
    # A date column would make kubectl print <invalid> for a time in the future.
    assert columns["Expires"]["type"] == "string"
    [row] = [r for r in requests["rows"] if r["cells"][0] == "table-auto"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert cells["Expires"] == active["status"]["expiresAt"]
    assert cells["Requester"] == AGENT and cells["Reason"] == active["status"]["reason"]
    assert cells["Justification"].startswith("INC-4711")

    # A policy that leaves target and approval out still shows both (the API server defaults them).
    [policy] = [m for m in playground_policies() if m["metadata"]["name"] == "oncall-restart"]
    policy["metadata"]["name"] = "defaults-only"
    del policy["spec"]["target"], policy["spec"]["approval"]
    playground.env.apply([policy])
    policies = table("/apis/jitgrant.dev/v1alpha1/grantpolicies")
    names = [c["name"] for c in policies["columnDefinitions"]]
    [row] = [r for r in policies["rows"] if r["cells"][0] == "defaults-only"]
    cells = dict(zip(names, row["cells"], strict=True))
    assert cells["Target"] == "InCluster" and cells["Approval"] is False
    [prod] = [r for r in policies["rows"] if r["cells"][0] == "prod-restart"]
    cells = dict(zip(names, prod["cells"], strict=True))
    assert cells["Approval"] is True and cells["Approvers"] == ["sre-oncall"]  # by whom


def playground_policies() -> list[dict[str, Any]]:
    from jitgrant_testing.environment import EXAMPLES, load_manifests

    return load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")


def test_every_spec_field_has_a_kubectl_explain_description() -> None:
    def undescribed(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for name, prop in (node.get("properties") or {}).items():
            if not prop.get("description"):
                missing.append(f"{path}.{name}")
            missing += undescribed(prop, f"{path}.{name}")
            missing += undescribed(prop.get("items") or {}, f"{path}.{name}[]")
        return missing

    for crd in all_crds().values():
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert undescribed(spec, "spec") == [], crd["spec"]["names"]["kind"]


def test_a_timeout_is_exit_code_11_for_every_command(
    playground: Playground, capsys: pytest.CaptureFixture[str]
) -> None:
    """`revoke --all --wait` gives up as `request --wait` does: 11 (it was 5). A live grant nobody
    revokes stands in for an operator that does not answer."""
    file_request(playground, "zz-live", example="restart-checkout.yaml")
    playground.env.wait_for_phase(NS, "zz-live", "Active")
    with PeopleClient(Connection.from_kubeconfig(playground.kubeconfigs["admin"])) as people:
        assert _wait_until_ended(people, [(NS, "zz-live")], timeout=1) == 11 == int(ExitCode.TIMED_OUT)
    assert "still live after 1s: agents/zz-live; is the operator running?" in capsys.readouterr().err


def test_version_and_shell_completion(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(None, "--version")
    assert exited.value.code == 0
    assert cli.capsys.readouterr().out.startswith("jitgrant 0.")
    script = cli(None, "completion", "bash").out

    def complete(*words: str) -> list[str]:
        line = " ".join(f'"{w}"' for w in words)
        run = subprocess.run(
            [
                "bash",
                "-c",
                f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _jitgrant; "
                'echo "${COMPREPLY[@]}"',
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return run.stdout.split()

    assert complete("jitgrant", "li") == ["list"]
    assert "--as-group" in complete("jitgrant", "approve", "--as")
    assert "--pending" in complete("jitgrant", "list", "--p")
    json.dumps(script)  # plain text, no bytes


def test_request_release_and_policies_act_as_whom_as_names(playground: Playground, cli: Cli) -> None:
    """The agent's commands take kubectl's --as/--as-group: the admin (allowed to impersonate) acts as
    the agent, so the webhook stamps the agent as requester and only --as the agent may release."""
    request = (
        "request",
        "--policy",
        "oncall-restart",
        "--target-namespace",
        "payments",
        "--cluster-role",
        "jit-restart-checkout",
        "--justification",
        "INC-4711 checkout pods stuck",
        "-n",
        NS,
    )
    # Two groups: each must reach the API server as its own Impersonate-Group line.
    as_agent = ("--as", AGENT, "--as-group", "ci-agents", "--as-group", "sre-oncall")

    filed = cli("admin", *request, "--name", "imp-agent", "--wait", "--wait-timeout", "60s", *as_agent)
    assert (filed.code, filed.out.strip()) == (0, "imp-agent"), filed.err
    assert f"filed AccessRequest {NS}/imp-agent as {AGENT}" in filed.err
    requester = playground.env.get_request(NS, "imp-agent")["spec"]["requester"]
    assert requester["username"] == AGENT
    assert {"ci-agents", "sre-oncall"} <= set(requester["groups"]), requester

    # The admin as itself is no requester of any policy, and may not release the agent's grant.
    assert cli("admin", *request, "--dry-run").code == ExitCode.DENIED
    assert cli("admin", *request, "--dry-run", "--as", AGENT).out.strip() == "allowed"
    assert "no GrantPolicy names you" in cli("admin", "policies").err
    not_theirs = cli("admin", "release", "imp-agent", "-n", NS)
    assert not_theirs.code == ExitCode.REFUSED and "filed by another identity" in not_theirs.err

    offered = cli("admin", "policies", "-o", "json", "--as", AGENT)
    assert offered.code == 0, offered.err
    assert {"oncall-restart", "prod-restart"} <= {p["policy"] for p in json.loads(offered.out)}

    # Impersonating needs the `impersonate` verb: alice (an approver) cannot act as the agent.
    for argv in (
        (*request, "--name", "imp-refused"),
        ("request", *request[1:], "--dry-run"),
        ("release", "imp-agent", "-n", NS),
        ("policies",),
    ):
        refused = cli("approver", *argv, "--as", AGENT)
        assert refused.code == ExitCode.REFUSED, (argv, refused.err)
        assert 'User "alice" cannot impersonate' in refused.err, (argv, refused.err)

    released = cli("admin", "release", "imp-agent", "-n", NS, "--reason", "done", *as_agent)
    assert released.code == 0, released.err
    assert released.out.startswith(f"{NS}/imp-agent: ")
    status = playground.env.wait_for_phase(NS, "imp-agent", "Revoked")["status"]
    assert (status["reason"], status["message"]) == ("Released", f"Released by requester {AGENT}: done")
