"""Each page of the console checked by axe-core (vendored: tests/console/axe.min.js, axe-core 4.14.1,
MPL-2.0) in the same Chromium, at 360 px: no serious or critical violation. The script is run through
the browser's debugging protocol, so the page's own Content-Security-Policy stays as served."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import People
from .harness import RunningConsole, open_page
from .test_console_browser import NS, file_request

AXE = (Path(__file__).parent / "axe.min.js").read_text()


def serious(page: Any) -> list[str]:
    page.evaluate(AXE)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_every_page_has_no_serious_accessibility_violation(
    people: People, console_for: Callable[..., RunningConsole], browser: Any
) -> None:
    file_request(people, "console-axe")
    alice = console_for("alice")
    page = open_page(browser, alice)
    found: dict[str, list[str]] = {}
    for path in ("/", "/mine", "/policies", f"/requests/{NS}/console-axe", f"/requests/{NS}/no-such"):
        page.goto(alice.base + path)
        found[path] = serious(page)
    # A refusal shown on the page, and the page someone not signed in sees.
    page.goto(alice.base + f"/requests/{NS}/console-axe")
    page.click("#deny")  # no reason: the browser asks for one; fill it and deny with a reason
    page.fill("#deny-reason", "not now")
    page.click("#deny")
    page.wait_for_load_state()
    found["after deny"] = serious(page)
    page.context.close()
    other = browser.new_context(viewport={"width": 360, "height": 900}).new_page()
    other.goto(alice.base + "/")
    found["sign-in"] = serious(other)
    # The check can fail: a page with an image without text and an unlabelled field is caught.
    other.set_content('<html><body><img src="x.png"><input type="text"></body></html>')
    caught = serious(other)
    other.context.close()
    assert any(v.startswith("image-alt") for v in caught) and any(v.startswith("label") for v in caught), (
        caught
    )
    assert {path: v for path, v in found.items() if v} == {}
