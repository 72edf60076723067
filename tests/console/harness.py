"""What the console's browser tests share with tests/realapi/test_console.py: a console running as
`jitgrant console` does (local mode, its own event-loop thread), Debian's Chromium or one loud skip,
and the page helpers (sign in at 360 px, nothing sideways, screenshots)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jitgrant.client import Connection
from jitgrant.console.cli import local_console
from jitgrant.console.server import Server

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
DOCS = HERE.parents[1] / "docs"
WIDTH = 360


@dataclass
class RunningConsole:
    """One `jitgrant console` (local mode) for one kubeconfig, on its own loop thread."""

    base: str
    login_url: str
    _server: Server
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread

    @classmethod
    def start(cls, kubeconfig: Path, *, audit_log: Path | None = None) -> RunningConsole:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="console", daemon=True)
        thread.start()
        console, login = local_console(
            lambda: Connection.from_kubeconfig(kubeconfig), audit_logs=[str(audit_log)] if audit_log else ()
        )
        server = Server(console)
        base = asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        return cls(base, f"{base}/login?token={login.token}", server, loop, thread)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


def chromium_or_skip() -> Path:
    if not CHROMIUM.exists():
        subprocess.run([str(HERE / "install-chromium.sh")], check=False, timeout=600)
    if not CHROMIUM.exists():
        message = "CHROMIUM NOT INSTALLED: the console's browser tests are SKIPPED (apt-get install chromium)"
        print("\n" + "!" * 20 + " " + message + " " + "!" * 20)
        pytest.skip(message)
    return CHROMIUM


def launch_browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def save_to_docs(source: Path, name: str) -> None:
    """With JITGRANT_CONSOLE_DOCS=1 (run once by hand), a screenshot is copied into docs/ to commit."""
    if os.environ.get("JITGRANT_CONSOLE_DOCS") == "1":
        shutil.copyfile(source, DOCS / name)


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
