"""`jitgrant demo --scenario extend`: an agent whose task runs long extends its Active grant with
`jitgrant extend` (identity-and-approvals.md, "Extending an active grant").

The policy allows extensions; the dry run answers first; the extension moves the grant's end, the
same RoleBinding (its uid) still grants past the old end and is removed at the new one; extending the
ended grant is refused with the reason; the trail has the `extended` record.
"""

from __future__ import annotations

import time

from jitgrant_testing.demo.prod_approval import _kubeconfig, run_cli
from jitgrant_testing.demo.scenarios import (
    Reporter,
    _parse_time,
    _print_audit,
    _request_from_example,
    register,
    wait_for_phase,
)
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

NAMESPACE = "agents"
WINDOW = "5s"
BY = "6s"


def extend(report: Reporter) -> None:
    """An agent extends its Active grant: same binding, new end, refused once the grant ended."""
    report.step("start the embedded API server and the operator")
    with Environment() as env:
        report.check(True, f"embedded cluster at {env.cluster.url}, operator running")

        report.step("the platform team allows up to 2 extensions, 1 minute in all, under oncall-restart")
        env.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        [policy] = load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml")
        policy["spec"]["extensions"] = {"allowed": True, "maxCount": 2, "maxTotalDuration": "1m"}
        env.apply([policy])
        env.create_deployment("payments", "checkout")
        env.allow_to_request(NAMESPACE, service_account="oncall-agent")
        report.check(True, "spec.extensions: {allowed: true, maxCount: 2, maxTotalDuration: 1m}")
        token = env.service_account_token(NAMESPACE, "oncall-agent")
        agent = ["--kubeconfig", _kubeconfig(env, "oncall-agent", token), "-n", NAMESPACE]

        report.step(f"the agent files examples/requests/restart-checkout.yaml (window {WINDOW} for the demo)")
        manifest = _request_from_example("requests/restart-checkout.yaml", duration=WINDOW)
        name = manifest["metadata"]["name"]
        env.create_request(manifest, client=env.cluster.api_client(token=token))
        active = wait_for_phase(
            env, NAMESPACE, name, {"Active", "Denied", "Failed"}, timeout=30, report=report
        )
        report.check(active["status"]["phase"] == "Active", f"Active until {active['status']['expiresAt']}")
        [binding] = env.jit_bindings("payments")
        uid = binding["metadata"]["uid"]
        before = _parse_time(active["status"]["expiresAt"])

        report.step("the task runs long: the agent asks what an extension would do (nothing filed)")
        code, output = run_cli(
            report,
            [
                "extend",
                name,
                "--by",
                BY,
                "--justification",
                "INC-4711 rollout still draining",
                "--dry-run",
                *agent,
            ],
        )
        report.check(code == 0 and "extension allowed" in output, "the operator answers: extension allowed")

        report.step(f"`jitgrant extend {name} --by {BY}`")
        code, output = run_cli(
            report, ["extend", name, "--by", BY, "--justification", "INC-4711 rollout still draining", *agent]
        )
        extended = env.get_request(NAMESPACE, name)
        after = _parse_time(extended["status"]["expiresAt"])
        report.check(
            code == 0 and (after - before).total_seconds() == 6,
            f"expiresAt moved from {active['status']['expiresAt']} to {extended['status']['expiresAt']}",
        )

        report.step("past the old end: the same RoleBinding still grants")
        while time.time() < before.timestamp() + 1:
            time.sleep(0.1)
        uids = [b["metadata"]["uid"] for b in env.jit_bindings("payments")]
        report.check(
            uids == [uid], f"RoleBinding {binding['metadata']['name']} uid {uid}: no new binding, no gap"
        )

        report.step("at the new end the grant expires and the binding goes")
        ended = wait_for_phase(env, NAMESPACE, name, {"Expired"}, timeout=30, report=report)
        report.check(
            _parse_time(ended["status"]["endedAt"]) >= after and not env.jit_bindings("payments"),
            f"Expired at {ended['status']['endedAt']}, the RoleBinding removed",
        )

        report.step("extending the ended grant is refused, with the reason")
        code, output = run_cli(
            report, ["extend", name, "--by", BY, "--justification", "INC-4711 again", *agent]
        )
        report.check(
            code == 10 and "only an Active grant may be extended" in output, "refused: ExtensionRefused"
        )

        report.step("the audit trail")
        records = _print_audit(env, report, ended["metadata"]["uid"], expected=5)
        report.check(
            any(r["event"]["type"] == "extended" for r in records), "an `extended` record with the new end"
        )


register("extend", extend)
