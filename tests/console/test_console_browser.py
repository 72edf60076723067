"""The console as a person uses it: Chromium (Playwright) against consoles signed in as the approver,
the requester and a second approver, on the embedded cluster with the operator and its webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jitgrant.client import AsyncClient, Grant
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION
from jitgrant_testing.environment import EXAMPLES, load_manifests, wait_until

from .conftest import People
from .harness import RunningConsole, fits, open_page, save_to_docs, shot

NS = "agents"


def file_request(people: People, name: str, *, policy: str = "prod-restart", justification: str = "") -> None:
    env = people.env
    agent = env.cluster.api_client(token=people.agents.token())
    try:
        env.create_request(
            {
                "apiVersion": "jitgrant.dev/v1alpha1",
                "kind": "AccessRequest",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "policy": policy,
                    "namespace": "payments",
                    "clusterRole": "jit-restart-checkout",
                    "duration": "10m",
                    "justification": justification or f"INC-4712 {name}",
                },
            },
            client=agent,
        )
    finally:
        agent.close()
    env.wait_for_phase(NS, name, "Pending", timeout=30)


def recorded(people: People, name: str) -> list[dict[str, Any]]:
    annotations = people.env.get_request(NS, name)["metadata"].get("annotations") or {}
    entries: list[dict[str, Any]] = json.loads(annotations.get(APPROVALS_ANNOTATION) or "[]")
    return entries


def test_approver_sees_pending_request_and_approves_it(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    env = people.env
    file_request(people, "console-approve")
    page = open_page(browser, console_for("alice", audit_log=env.state_dir / "kube-apiserver-audit.log"))
    assert page.locator("#me").inner_text() == "alice"
    link = page.get_by_role("link", name=f"{NS}/console-approve")
    link.wait_for()
    assert "0 of 1; 1 more from users none; groups sre-oncall" in page.locator("tr", has=link).inner_text()
    fits(page)
    shot(page, screenshots, "waiting-for-me")
    link.click()
    page.wait_for_url("**/requests/agents/console-approve")
    assert page.locator("#requester").inner_text() == "system:serviceaccount:agents:oncall-agent"
    assert "INC-4712 console-approve" in page.locator("#justification").inner_text()
    fits(page)
    docs_shot = shot(page, screenshots, "request-pending")

    # The agent waits as agents do (jitgrant.client, as `jitgrant request --wait`): it returns once
    # the approval given in the browser has been counted and the grant is active.
    # (The async client on a thread of its own: Playwright's sync API runs a loop in this one.)
    async def wait_as_the_agent() -> Grant:
        async with AsyncClient.from_kubeconfig(people.kubeconfigs["agent"]) as agent:
            return await agent.wait("console-approve", namespace=NS, timeout=60)

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(asyncio.run, wait_as_the_agent())
        page.fill("#approve-reason", "INC-4712 checked")
        page.click("#approve")
        page.wait_for_load_state()
        assert page.url.endswith("/requests/agents/console-approve?done=approve"), page.url
        assert "Your approval was recorded" in page.get_by_role("status").inner_text()
        granted = waiting.result(timeout=60)
    assert granted.request.status.phase is not None and granted.request.status.phase.value == "Active"
    [entry] = recorded(people, "console-approve")
    assert (entry["approver"], entry["decision"], entry["reason"]) == ("alice", "approve", "INC-4712 checked")
    # Live: the watch's event makes the page fetch itself; the phase shows Active without a reload.
    page.locator(".phase-active").first.wait_for(timeout=30_000)
    assert entry["receipt"] in page.locator(".receipt").inner_text()
    shot(page, screenshots, "request-active")
    save_to_docs(docs_shot, "console-request.png")
    # After the grant: what it was used for, from the API server's audit log (as `jitgrant activity`).
    agent_api = env.client_for_service_account(NS, "oncall-agent")
    env.restart_deployment("payments", "checkout", client=agent_api)

    def shows_the_restart() -> bool | None:
        page.reload()
        return "apps/deployments/payments/checkout" in page.locator(".activity").inner_text() or None

    wait_until(shows_the_restart, timeout=30, what="the grant's restart in the request's activity")
    assert "patch" in page.locator(".activity").inner_text()
    assert not page.errors, page.errors
    page.context.close()


def test_requester_has_no_approve_button_and_a_forged_approval_shows_the_webhooks_refusal(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    file_request(people, "console-self")
    page = open_page(browser, console_for("agent"))
    page.goto(page.url + "mine")
    page.get_by_role("link", name=f"{NS}/console-self").click()
    page.wait_for_url("**/requests/agents/console-self")
    assert page.locator("#approve").count() == 0
    assert page.locator("#deny").count() == 0
    assert (
        "is the requester and cannot approve or deny their own request"
        in page.locator("#why-not").inner_text()
    )
    # The agent forges the form the page withheld: same session, its own CSRF token, a real submit.
    page.evaluate(
        """() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = location.pathname + "/approve";
            const csrf = document.querySelector("input[name=csrf]").cloneNode();
            const reason = document.createElement("input");
            reason.name = "reason";
            reason.value = "self-approved";
            form.append(csrf, reason);
            document.body.append(form);
            form.submit();
        }"""
    )
    page.locator("#refusal").wait_for()
    refusal = page.locator("#refusal").inner_text()
    assert "denied the request" in refusal or "admission webhook" in refusal, refusal
    assert "is the requester and cannot approve or deny their own request" in refusal, refusal
    shot(page, screenshots, "forged-approval-refused")
    assert recorded(people, "console-self") == []
    assert people.env.get_request(NS, "console-self")["status"]["phase"] == "Pending"
    page.context.close()


def test_a_second_approver_completes_a_two_approval_policy(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    env = people.env
    [policy] = [p for p in load_manifests(EXAMPLES / "prod-approval" / "policy.yaml")]
    policy["metadata"]["name"] = "prod-restart-two"
    policy["spec"]["approval"]["minApprovals"] = 2
    env.apply([policy])
    file_request(people, "console-two", policy="prod-restart-two")
    alice, bob = open_page(browser, console_for("alice")), open_page(browser, console_for("bob"))
    for page, who, before in ((alice, "alice", "0 of 2; 2 more"), (bob, "bob", "1 of 2; 1 more")):
        page.reload()
        row = page.locator("tr", has=page.get_by_role("link", name=f"{NS}/console-two"))
        assert before in row.inner_text(), (who, row.inner_text())
        page.goto(page.url.split("?")[0].rstrip("/") + "/requests/agents/console-two")
        page.fill("#approve-reason", f"{who} checked")
        page.click("#approve")
        page.wait_for_load_state()
        assert "Your approval was recorded" in page.get_by_role("status").inner_text(), page.content()
        if who == "alice":
            wait_until(
                lambda: (
                    len((env.get_request(NS, "console-two").get("status") or {}).get("approvals") or []) == 1
                ),
                what="the operator to count alice's approval",
            )
            assert env.get_request(NS, "console-two")["status"]["phase"] == "Pending"
    env.wait_for_phase(NS, "console-two", "Active", timeout=30)
    assert [entry["approver"] for entry in recorded(people, "console-two")] == ["alice", "bob"]
    # alice's page follows the watch: it shows both approvals, with their receipts, without a reload.
    alice.locator(".phase-active").first.wait_for(timeout=30_000)
    assert alice.locator(".approvals li").count() == 2
    shot(bob, screenshots, "two-approvals")
    alice.context.close()
    bob.context.close()


def test_hostile_justification_renders_inert(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    hostile = (
        'INC-1 <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
        '<b id="injected">bold</b> "quoted" \x1b[31mred\x1b[0m \u202eevil'
    )
    file_request(people, "console-hostile", justification=hostile)
    page = open_page(browser, console_for("alice"))
    page.goto(page.url + "requests/agents/console-hostile")
    shown = page.locator("#justification").inner_text()
    assert shown == (
        'INC-1 <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
        '<b id="injected">bold</b> "quoted" \\e[31mred\\e[0m \\u202eevil'
    ), shown
    assert page.evaluate("window.pwned") is None
    assert page.locator("#injected").count() == 0
    assert page.locator("#justification *").count() == 0  # text only, no element inside
    scripts = page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
    assert scripts == ["/static/console.js"], scripts
    shot(page, screenshots, "hostile-justification")
    assert not page.errors, page.errors
    page.context.close()


def test_revoke_ends_the_grant(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    env = people.env
    file_request(people, "console-revoke")
    env.annotate_request(
        NS,
        "console-revoke",
        {"jitgrant.dev/approve": "ok"},
        client=env.client_for_user("carol", groups=("sre-oncall",)),
    )
    active = env.wait_for_phase(NS, "console-revoke", "Active", timeout=30)
    binding = active["status"]["grant"]["roleBinding"]
    assert binding in [b["metadata"]["name"] for b in env.jit_bindings("payments")]
    page = open_page(browser, console_for("alice"))
    page.goto(page.url + "requests/agents/console-revoke")
    page.click("#revoke")  # the reason is required: the browser does not submit without it
    assert page.url.endswith("/requests/agents/console-revoke")
    page.fill("#revoke-reason", "INC-4712 done, access no longer needed")
    page.click("#revoke")
    page.wait_for_load_state()
    assert "Revocation requested" in page.get_by_role("status").inner_text()
    obj = env.wait_for_phase(NS, "console-revoke", "Revoked", timeout=30)
    assert "alice" in obj["metadata"]["annotations"]["jitgrant.dev/revoked-by"]
    wait_until(
        lambda: binding not in [b["metadata"]["name"] for b in env.jit_bindings("payments")] or None,
        what="the grant's RoleBinding to be removed",
    )
    page.locator(".phase-revoked").first.wait_for(timeout=30_000)
    assert page.locator("#revoke").count() == 0
    shot(page, screenshots, "revoked")
    page.context.close()
