"""`jitgrant console` against the real kube-apiserver with the chart's RBAC and the operator's
webhooks: the approver (static-token identity in group jitgrant:approvers, bound to the chart's
jitgrant-approver ClusterRole) approves in Chromium and the request becomes Active; the requester's
console offers no approve button, and its forged approval shows the webhook's refusal."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from console.harness import RunningConsole, fits, launch_browser, open_page, shot
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES, load_manifests
from jitgrant_testing.realenv import RealEnvironment

NS = "agents"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def policy(real_env: RealEnvironment) -> str:
    [manifest] = load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")
    manifest["metadata"]["name"] = name = "prod-restart-console"
    manifest["spec"]["approval"]["approvers"] = {"groups": ["jitgrant:approvers"]}
    real_env.apply([manifest])
    # The chart's ClusterRole for approvers, bound as docs/console.md says; the agent may patch its
    # own requests (that is what makes a forged approval worth trying).
    real_env.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "console-approver"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "jitgrant-approver",
                },
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "approver"}],
            }
        ]
    )
    real_env.allow(
        NS,
        role="agent-edit",
        rules=[
            {
                "apiGroups": ["jitgrant.dev"],
                "resources": ["accessrequests"],
                "verbs": ["get", "list", "watch", "patch"],
            }
        ],
        service_account="oncall-agent",
    )
    return name


def agent_kubeconfig(real_env: RealEnvironment, plane: ControlPlane, directory: Path) -> Path:
    token = real_env.service_account_token(NS, "oncall-agent")
    path = directory / "agent.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "real",
                        "cluster": {
                            "server": plane.server,
                            "certificate-authority-data": base64.b64encode(
                                plane.ca_path.read_bytes()
                            ).decode(),
                        },
                    }
                ],
                "users": [{"name": "agent", "user": {"token": token}}],
                "contexts": [
                    {"name": "real", "context": {"cluster": "real", "user": "agent", "namespace": NS}}
                ],
                "current-context": "real",
            }
        )
    )
    path.chmod(0o600)
    return path


def test_approve_in_the_console_on_the_real_api_server(
    real_env: RealEnvironment,
    control_plane: ControlPlane,
    policy: str,
    browser: Any,
    tmp_path: Path,
) -> None:
    name = f"console-{secrets.token_hex(3)}"
    agent = real_env.client_for_service_account(NS, "oncall-agent")
    real_env.create_request(
        {
            "apiVersion": "jitgrant.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "policy": policy,
                "namespace": "payments",
                "clusterRole": "jit-restart-checkout",
                "duration": "30s",
                "justification": "INC-4712 <b>restart</b> \x1b[31mnow",
            },
        },
        client=agent,
    )
    real_env.wait_for_phase(NS, name, "Pending", timeout=30)
    consoles = [
        RunningConsole.start(agent_kubeconfig(real_env, control_plane, tmp_path)),
        RunningConsole.start(control_plane.kubeconfig_path("approver", namespace=NS)),
    ]
    try:
        requester, approver = (open_page(browser, console) for console in consoles)
        # The requester: no button; the forged form meets the webhook.
        requester.goto(consoles[0].base + f"/requests/{NS}/{name}")
        assert requester.locator("#approve").count() == 0
        requester.evaluate(
            """() => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = location.pathname + "/approve";
                form.append(document.querySelector("input[name=csrf]").cloneNode());
                document.body.append(form);
                form.submit();
            }"""
        )
        requester.locator("#refusal").wait_for()
        refusal = requester.locator("#refusal").inner_text()
        assert "is the requester and cannot approve or deny their own request" in refusal, refusal
        shot(requester, tmp_path, "real-forged")
        # The approver: the request is waiting for them; approving makes it Active.
        link = approver.get_by_role("link", name=f"{NS}/{name}")
        link.wait_for()
        link.click()
        assert approver.locator("#justification").inner_text() == "INC-4712 <b>restart</b> \\e[31mnow"
        fits(approver)
        approver.fill("#approve-reason", "INC-4712 checked")
        approver.click("#approve")
        approver.wait_for_load_state()
        assert "Your approval was recorded" in approver.get_by_role("status").inner_text()
        real_env.wait_for_phase(NS, name, "Active", timeout=30)
        annotations = real_env.get_request(NS, name)["metadata"]["annotations"]
        [entry] = json.loads(annotations[APPROVALS_ANNOTATION])
        assert (entry["approver"], entry["decision"]) == ("approver", "approve")
        approver.locator(".phase-active").first.wait_for(timeout=30_000)
        shot(approver, tmp_path, "real-active")
        for page in (requester, approver):
            page.context.close()
    finally:
        for console in consoles:
            console.stop()
