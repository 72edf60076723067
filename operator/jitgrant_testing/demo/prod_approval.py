"""`jitgrant demo --scenario prod-approval`: one human from the on-call group must approve, and only they
can.

The agent, a second identity of the agent, and a user who may edit AccessRequests but is no approver
all try to approve and are refused by the admission webhook with the reason; the approver approves
with `jitgrant approve` (the real CLI, with a kubeconfig holding their own token); the grant is exactly
the requested scope, expires on its own, and the audit trail names the approver with their receipt.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from embedkube import User
from jitgrant.cli.main import main as jitgrant_cli
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION, APPROVE_ANNOTATION
from jitgrant_testing.demo.scenarios import (
    Reporter,
    _check_binding,
    _check_grant_works_exactly,
    _install_examples,
    _parse_time,
    _print_audit,
    _request_from_example,
    forbidden,
    register,
    wait_for_phase,
)
from jitgrant_testing.environment import Environment

NAMESPACE = "agents"
NAME = "restart-checkout-prod"
WINDOW = "6s"
APPROVER = "alice"
APPROVER_GROUP = "sre-oncall"


def run_cli(report: Reporter, args: list[str]) -> tuple[int, str]:
    """Run `jitgrant <args>` in-process, print what it printed, return (exit code, output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = jitgrant_cli(args)
    shown = [Path(a).name if a.startswith("/") else (repr(a) if " " in a else a) for a in args]
    report.note(f"$ jitgrant {' '.join(shown)}")
    for line in out.getvalue().splitlines():
        report.note(f"  {line}")
    return code, out.getvalue()


def _kubeconfig(env: Environment, name: str, token: str) -> str:
    path = env.state_dir / f"{name}.kubeconfig"
    env.cluster.write_kubeconfig(path, token=token, namespace=NAMESPACE)
    return str(path)


def _recorded(env: Environment) -> list[dict[str, Any]]:
    annotations = env.get_request(NAMESPACE, NAME)["metadata"].get("annotations") or {}
    entries: list[dict[str, Any]] = json.loads(annotations.get(APPROVALS_ANNOTATION) or "[]")
    return entries


def _attempt_refused(env: Environment, report: Reporter, *, who: str, kubeconfig: str) -> None:
    code, output = run_cli(
        report, ["approve", NAME, "-n", NAMESPACE, "--reason", "looks fine", "--kubeconfig", kubeconfig]
    )
    report.check(code != 0 and "refused" in output, f"{who}'s approval is refused, with the webhook's reason")
    obj = env.get_request(NAMESPACE, NAME)
    report.check(
        obj["status"]["phase"] == "Pending"
        and not _recorded(env)
        and APPROVE_ANNOTATION not in (obj["metadata"].get("annotations") or {}),
        "the request is still Pending and no approval was recorded",
    )


def prod_approval(report: Reporter) -> None:
    """Production: a human from sre-oncall approves; the agent and non-approvers cannot (here: 6 s)."""
    report.step(
        "start the embedded API server and the operator (its own ServiceAccount, chart RBAC, webhooks)"
    )
    with Environment() as env:
        report.check(True, f"embedded cluster at {env.cluster.url}, operator running")

        report.step("the platform team installs the grantable ClusterRole and the prod-restart policy")
        _install_examples(env, report, "prod-approval/policy.yaml")
        report.note("approval: required, approvers: group sre-oncall, minApprovals: 1")
        # Agents usually may edit their own requests: that is exactly what makes self-approval a risk.
        edit = [{"apiGroups": ["jitgrant.dev"], "resources": ["accessrequests"], "verbs": ["patch"]}]
        for account in ("oncall-agent", "oncall-agent-canary"):
            env.allow(NAMESPACE, role="agent-edit", rules=edit, service_account=account)
        env.allow_to_request(NAMESPACE, service_account="oncall-agent-canary")
        env.allow_to_approve(NAMESPACE, user="mallory")  # RBAC lets her patch; the policy does not name her
        env.allow_to_approve(NAMESPACE, group=APPROVER_GROUP)
        agent_token = env.service_account_token(NAMESPACE, "oncall-agent")
        agent = env.cluster.api_client(token=agent_token)
        kubeconfigs = {
            "oncall-agent": _kubeconfig(env, "oncall-agent", agent_token),
            "oncall-agent-canary": _kubeconfig(
                env, "oncall-agent-canary", env.service_account_token(NAMESPACE, "oncall-agent-canary")
            ),
            "mallory": _kubeconfig(
                env, "mallory", env.cluster.add_user(User(name="mallory", uid="uid-mallory", groups=("dev",)))
            ),
            APPROVER: _kubeconfig(
                env,
                APPROVER,
                env.cluster.add_user(User(name=APPROVER, uid="uid-alice", groups=(APPROVER_GROUP,))),
            ),
        }
        report.check(
            True,
            "identities: agents/oncall-agent (requester), agents/oncall-agent-canary (the agent's second "
            "ServiceAccount), mallory (may patch requests, not an approver), alice (group sre-oncall)",
        )

        report.step(
            "the agent files examples/requests/restart-checkout-prod.yaml "
            f"(window shortened to {WINDOW} for the demo)"
        )
        created = env.create_request(
            _request_from_example("requests/restart-checkout-prod.yaml", duration=WINDOW), client=agent
        )
        stamped = created["spec"]["requester"]["username"]
        report.check(
            stamped == "system:serviceaccount:agents:oncall-agent",
            f"requester stamped from the API server's authentication: {stamped}",
        )

        report.step("the operator decides: the policy needs a human")
        obj = wait_for_phase(
            env, NAMESPACE, NAME, {"Pending", "Active", "Denied", "Failed"}, timeout=30, report=report
        )
        status = obj["status"]
        report.check(
            status["phase"] == "Pending" and status.get("reason") == "AwaitingApproval",
            f"phase Pending, reason {status.get('reason')}: {status.get('message')}",
        )
        report.check(
            not [b for b in env.role_bindings("payments") if b["metadata"]["name"].startswith("jit-")],
            "no RoleBinding exists yet",
        )
        refused, message = forbidden(lambda: env.restart_deployment("payments", "checkout", client=agent))
        report.check(refused, f"the agent still cannot restart checkout: {message}")
        approver = ["--kubeconfig", kubeconfigs[APPROVER]]
        code, output = run_cli(report, ["describe", NAME, "-n", NAMESPACE, *approver])
        report.check(
            code == 0 and "Pending" in output and "AwaitingApproval" in output,
            "`jitgrant describe` shows the approver the phase, the scope and why it waits",
        )

        report.step("the agent tries to approve its own request")
        _attempt_refused(env, report, who="the requester", kubeconfig=kubeconfigs["oncall-agent"])

        report.step("a second identity of the agent (ServiceAccount agents/oncall-agent-canary) tries")
        _attempt_refused(
            env, report, who="the agent's second identity", kubeconfig=kubeconfigs["oncall-agent-canary"]
        )

        report.step("mallory, who may patch AccessRequests but is not an approver, tries")
        _attempt_refused(env, report, who="a non-approver", kubeconfig=kubeconfigs["mallory"])

        report.step("alice (group sre-oncall) approves with `jitgrant approve`")
        code, _ = run_cli(
            report,
            [
                "approve",
                NAME,
                "-n",
                NAMESPACE,
                "--reason",
                "INC-4712 checked, hotfix is deployed",
                "--kubeconfig",
                kubeconfigs[APPROVER],
            ],
        )
        report.check(code == 0, "the CLI exits 0")
        [entry] = _recorded(env)
        report.check(
            entry["approver"] == APPROVER
            and APPROVER_GROUP in entry["groups"]
            and entry["decision"] == "approve"
            and entry["receipt"].startswith("v1:"),
            f"the webhook recorded {entry['approver']} ({', '.join(entry['groups'])}) at {entry['at']} "
            f"with receipt {entry['receipt'][:19]}...",
        )

        report.step("the operator counts the approval and grants")
        obj = wait_for_phase(
            env, NAMESPACE, NAME, {"Active", "Denied", "Failed", "Expired"}, timeout=30, report=report
        )
        status = obj["status"]
        report.check(status["phase"] == "Active", f"phase Active: {status.get('message')}")
        approvals = status.get("approvals") or []
        report.check(
            [a["approver"] for a in approvals] == [APPROVER] and approvals[0]["receipt"] == entry["receipt"],
            f"status.approvals: {APPROVER}, with the receipt the webhook recorded",
        )
        window = _parse_time(status["expiresAt"]) - _parse_time(status["activatedAt"])
        report.check(window.total_seconds() == 6, f"window {window.total_seconds():.0f}s from activation")
        _check_binding(env, report, obj)

        report.step("the grant is exactly the grant")
        _check_grant_works_exactly(env, report, agent)

        report.step("the window closes")
        obj = wait_for_phase(env, NAMESPACE, NAME, {"Expired", "Failed"}, timeout=30, report=report)
        report.check(obj["status"]["phase"] == "Expired", f"phase Expired at {obj['status'].get('endedAt')}")
        report.check(
            not [b for b in env.role_bindings("payments") if b["metadata"]["name"].startswith("jit-")],
            "no jitgrant RoleBinding remains in payments",
        )
        refused, message = forbidden(lambda: env.restart_deployment("payments", "checkout", client=agent))
        report.check(refused, f"the agent is refused again: {message}")

        report.step("the audit trail (hash-chained JSON lines)")
        records = _print_audit(env, report, obj["metadata"]["uid"], expected=6)
        types = [r["event"]["type"] for r in records]
        report.check(
            types[:6] == ["requested", "pending", "approved", "issuing", "granted", "expired"],
            f"requested, pending, approved, issuing, granted, expired recorded in order ({', '.join(types)})",
        )
        approved = next(r["event"] for r in records if r["event"]["type"] == "approved")
        for approver in approved["approvers"]:
            report.note(
                f"approval: {approver['approver']} at {approver['at']}, receipt {approver['receipt']}"
            )
        report.check(
            [(a["approver"], a["receipt"]) for a in approved["approvers"]] == [(APPROVER, entry["receipt"])],
            "the approved record names alice with the same receipt as the request's annotation",
        )
        report.note(f"audit file: {Path(env.audit_file)}")

        report.step("what the agent did with the grant, from the API server's own audit log")
        admin = _kubeconfig(env, "admin", env.cluster.admin_token)
        log = str(env.state_dir / "kube-apiserver-audit.log")
        args = ["activity", NAME, "-n", NAMESPACE, "--kubeconfig", admin, "--audit-log", log]
        code, out = run_cli(report, args)
        rows = [line.split() for line in out.splitlines()[2:-1]]
        mine = [(row[1], row[3]) for row in rows if "grant" in row and "this" in row]
        report.check(
            code == 0 and mine == [("patch", "payments/checkout")], "its one restart, allowed by this grant"
        )
        report.check(
            any(row[1:5] == ["patch", "apps/deployments", "payments/ledger", "403"] for row in rows),
            "and the refused attempt on deployment/ledger, by identity and window",
        )


register("prod-approval", prod_approval)
