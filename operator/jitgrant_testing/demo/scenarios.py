"""`jitgrant demo`: scenarios that print each step as it happens and check it against the cluster.

A scenario exits 0 only if every step was checked against the cluster's actual state; the first
failed check stops it and names the step.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests


class StepFailed(Exception):
    pass


@dataclass
class Reporter:
    """Numbered steps on stdout; `check` turns an observed fact into a pass or a named failure."""

    # None: whatever sys.stdout is when printing (a default bound at import time would keep a
    # stream that test capture or a redirect has since closed).
    out: Any = None
    number: int = 0

    def step(self, text: str) -> None:
        self.number += 1
        print(f"\n[{self.number}] {text}", file=self.out or sys.stdout, flush=True)

    def check(self, condition: bool, fact: str) -> None:
        if not condition:
            raise StepFailed(f"step {self.number}: expected {fact}")
        print(f"    ok: {fact}", file=self.out or sys.stdout, flush=True)

    def note(self, text: str) -> None:
        print(f"    {text}", file=self.out or sys.stdout, flush=True)


def wait_for_phase(
    env: Environment, namespace: str, name: str, phases: set[str], *, timeout: float, report: Reporter
) -> dict[str, Any]:
    """Poll the request, printing each phase it passes through, until it reaches one of `phases`."""
    deadline = time.monotonic() + timeout
    seen: str | None = "-"
    while True:
        obj = env.get_request(namespace, name)
        phase = (obj.get("status") or {}).get("phase")
        if phase != seen:
            report.note(f"... phase: {phase or '(not yet decided)'}")
            seen = phase
        if phase in phases:
            return obj
        if time.monotonic() > deadline:
            raise StepFailed(
                f"step {report.number}: {namespace}/{name} did not reach {sorted(phases)} "
                f"within {timeout:.0f}s (phase {phase})"
            )
        time.sleep(0.2)


def forbidden(action: Callable[[], object]) -> tuple[bool, str]:
    """Run an API call expected to be refused; (True, server message) when the server said 403."""
    try:
        action()
    except ApiException as exc:
        if exc.status == 403:
            return True, json.loads(exc.body or "{}").get("message", "")
        raise
    return False, ""


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _request_from_example(path: str, *, duration: str) -> dict[str, Any]:
    manifest = copy.deepcopy(load_manifests(EXAMPLES / path)[0])
    manifest["spec"]["duration"] = duration
    return manifest


def _install_examples(env: Environment, report: Reporter, policy_file: str) -> None:
    env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
    env.apply(load_manifests(EXAMPLES / policy_file))
    env.create_deployment("payments", "checkout")
    env.create_deployment("payments", "ledger")
    env.create_deployment("orders", "checkout")
    env.allow_to_request("agents", service_account="oncall-agent")
    report.check(
        True,
        f"policy from examples/{policy_file}, ClusterRole jit-restart-checkout, "
        "deployments payments/checkout, payments/ledger, orders/checkout",
    )


def _check_grant_works_exactly(env: Environment, report: Reporter, agent: ApiClient) -> None:
    env.restart_deployment("payments", "checkout", client=agent)
    report.check(True, "the agent restarted deployment/checkout in payments with its own token")
    refused, message = forbidden(lambda: env.restart_deployment("payments", "ledger", client=agent))
    report.check(refused, f"restarting deployment/ledger is refused by the API server: {message}")
    refused, message = forbidden(lambda: env.restart_deployment("orders", "checkout", client=agent))
    report.check(refused, f"restarting checkout in namespace orders is refused: {message}")


def _check_binding(env: Environment, report: Reporter, obj: Mapping[str, Any]) -> str:
    grant = obj["status"]["grant"]
    bindings = {b["metadata"]["name"]: b for b in env.role_bindings("payments")}
    binding = bindings.get(grant["roleBinding"])
    report.check(binding is not None, f"RoleBinding payments/{grant['roleBinding']} exists")
    assert binding is not None
    report.check(
        binding["roleRef"]["name"] == "jit-restart-checkout"
        and binding["subjects"]
        == [{"kind": "ServiceAccount", "name": "oncall-agent", "namespace": "agents"}],
        "it binds ClusterRole jit-restart-checkout to ServiceAccount agents/oncall-agent only",
    )
    labels = binding["metadata"].get("labels", {})
    report.check(
        labels.get("jitgrant.dev/request-uid") == obj["metadata"]["uid"],
        "it is labelled with the request's uid and annotated with its expiry "
        f"({binding['metadata']['annotations'].get('jitgrant.dev/expires-at')})",
    )
    return str(grant["roleBinding"])


def _audit_records(env: Environment, request_uid: str) -> list[dict[str, Any]]:
    if not env.audit_file.exists():
        return []
    records = [json.loads(line) for line in env.audit_file.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == "record" and r["event"]["requestUid"] == request_uid]


def _print_audit(
    env: Environment, report: Reporter, request_uid: str, *, expected: int
) -> list[dict[str, Any]]:
    """Wait for the file sink (fed from the spool in the background) and print the request's trail."""
    deadline = time.monotonic() + 10
    mine = _audit_records(env, request_uid)
    while len(mine) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        mine = _audit_records(env, request_uid)
    for record in mine:
        event = record["event"]
        report.note(
            f"#{record['seq']:<3} {event['time']}  {event['type']:<18} {event.get('reason') or ''}"[:150]
        )
    return mine


def oncall_restart(report: Reporter) -> None:
    """Staging: the on-call agent gets a 15-minute (here: 6 s) restart grant without a human."""
    report.step(
        "start the embedded API server and the operator (its own ServiceAccount, chart RBAC, webhooks)"
    )
    with Environment() as env:
        report.check(True, f"embedded cluster at {env.cluster.url}, operator running")
        report.step("the platform team installs the grantable ClusterRole and the oncall-restart policy")
        _install_examples(env, report, "oncall-restart/policy.yaml")
        agent = env.client_for_service_account("agents", "oncall-agent")

        report.step("before any grant, the agent has no standing access")
        refused, message = forbidden(lambda: env.restart_deployment("payments", "checkout", client=agent))
        report.check(refused, f"restart refused: {message}")

        report.step(
            "the agent files examples/requests/restart-checkout.yaml (window shortened to 6s for the demo)"
        )
        manifest = _request_from_example("requests/restart-checkout.yaml", duration="6s")
        manifest["spec"]["requester"] = {
            "username": "system:serviceaccount:kube-system:admin"
        }  # a forgery attempt
        created = env.create_request(manifest, client=agent)
        stamped = created["spec"]["requester"]["username"]
        report.check(
            stamped == "system:serviceaccount:agents:oncall-agent",
            f"the webhook replaced the forged requester with the authenticated one ({stamped})",
        )

        report.step("the operator decides (auto-approval in staging) and grants")
        obj = wait_for_phase(
            env, "agents", "restart-checkout", {"Active", "Denied", "Failed"}, timeout=30, report=report
        )
        report.check(obj["status"]["phase"] == "Active", f"phase Active: {obj['status'].get('message')}")
        window = _parse_time(obj["status"]["expiresAt"]) - _parse_time(obj["status"]["activatedAt"])
        report.check(window.total_seconds() == 6, f"window {window.total_seconds():.0f}s from activation")
        _check_binding(env, report, obj)

        report.step("the grant is exactly the grant")
        _check_grant_works_exactly(env, report, agent)

        report.step("the window closes")
        obj = wait_for_phase(
            env, "agents", "restart-checkout", {"Expired", "Failed"}, timeout=30, report=report
        )
        report.check(obj["status"]["phase"] == "Expired", f"phase Expired at {obj['status'].get('endedAt')}")
        lag = (
            _parse_time(obj["status"]["endedAt"]) - _parse_time(obj["status"]["expiresAt"])
        ).total_seconds()
        report.check(lag < 5, f"revoked {lag:.0f}s after expiresAt")
        report.check(
            not [b for b in env.role_bindings("payments") if b["metadata"]["name"].startswith("jit-")],
            "no jitgrant RoleBinding remains in payments",
        )
        refused, message = forbidden(lambda: env.restart_deployment("payments", "checkout", client=agent))
        report.check(refused, f"the agent is refused again: {message}")

        report.step("the audit trail (hash-chained JSON lines)")
        records = _print_audit(env, report, obj["metadata"]["uid"], expected=5)
        types = [r["event"]["type"] for r in records]
        report.check(
            types[:5] == ["requested", "approved", "issuing", "granted", "expired"],
            f"requested, approved, issuing, granted, expired recorded in order ({', '.join(types)})",
        )


SCENARIOS: dict[str, Callable[[Reporter], None]] = {
    "oncall-restart": oncall_restart,
}


def register(name: str, scenario: Callable[[Reporter], None]) -> None:
    SCENARIOS[name] = scenario


def _load_optional_scenarios() -> None:
    import importlib

    for module in (
        "jitgrant_testing.demo.prod_approval",
        "jitgrant_testing.demo.eks",
        "jitgrant_testing.demo.mcp_agent",
        "jitgrant_testing.demo.extend",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def run_scenarios(which: str, *, list_only: bool = False) -> int:
    # The scenario prints its own story; kopf's notes about running outside the main thread and
    # about shutting down with work queued are noise here.
    logging.getLogger("kopf").setLevel(logging.ERROR)
    _load_optional_scenarios()
    if list_only:
        for name, fn in SCENARIOS.items():
            print(f"{name}: {(fn.__doc__ or '').strip()}")
        return 0
    names = list(SCENARIOS) if which == "all" else [which]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(
            f"error: unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)} or 'all'",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print(f"=== scenario {name}: {(SCENARIOS[name].__doc__ or '').strip()}", flush=True)
        report = Reporter()
        try:
            SCENARIOS[name](report)
        except StepFailed as exc:
            print(f"\nFAILED: scenario {name}, {exc}", file=sys.stderr)
            return 1
        except Exception as exc:
            print(
                f"\nFAILED: scenario {name}, step {report.number}: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 1
        print(f"\n=== scenario {name}: every step checked against the cluster", flush=True)
    return 0
