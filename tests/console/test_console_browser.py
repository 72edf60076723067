"""The console as a person uses it: Chromium (Playwright) against consoles signed in as the approver,
the requester and a second approver, on the embedded cluster with the operator and its webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jitgrant.models.vocabulary import APPROVALS_ANNOTATION

from .conftest import People, RunningConsole, save_to_docs

NS = "agents"
WIDTH = 360


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


def open_page(browser: Any, console: RunningConsole) -> Any:
    """A fresh browser context at 360 px wide, signed in through the console's one-time link."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(console.login_url)
    assert page.url == console.base + "/", page.url
    page.errors = errors  # CSP violations are reported on the page's console
    return page


def fits(page: Any) -> None:
    """Nothing sticks out sideways at 360 px (tables scroll inside their own box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url} is {width}px wide at a {WIDTH}px viewport"


def shot(page: Any, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def recorded(people: People, name: str) -> list[dict[str, Any]]:
    annotations = people.env.get_request(NS, name)["metadata"].get("annotations") or {}
    entries: list[dict[str, Any]] = json.loads(annotations.get(APPROVALS_ANNOTATION) or "[]")
    return entries


def test_approver_sees_pending_request_and_approves_it(
    people: People, console_for: Callable[..., RunningConsole], browser: Any, screenshots: Path
) -> None:
    file_request(people, "console-approve")
    page = open_page(browser, console_for("alice"))
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
    page.fill("#approve-reason", "INC-4712 checked")
    page.click("#approve")
    page.wait_for_load_state()
    assert page.url.endswith("/requests/agents/console-approve?done=approve"), (page.url, page.content())
    assert "Your approval was recorded" in page.get_by_role("status").inner_text()
    [entry] = recorded(people, "console-approve")
    assert (entry["approver"], entry["decision"], entry["reason"]) == ("alice", "approve", "INC-4712 checked")
    people.env.wait_for_phase(NS, "console-approve", "Active", timeout=30)
    # Live: the watch's event makes the page fetch itself; the phase shows Active without a reload.
    page.locator(".phase-active").first.wait_for(timeout=30_000)
    assert entry["receipt"] in page.locator(".receipt").inner_text()
    shot(page, screenshots, "request-active")
    save_to_docs(docs_shot, "console-request.png")
    assert not page.errors, page.errors
    page.context.close()
