"""The console's fixtures: the embedded cluster with agents and approvers, consoles signed in as each
person (each in its own event-loop thread, as `jitgrant console` runs), and Debian's Chromium driven
by Playwright. Without Chromium (and no way to install it) the browser tests say so loudly and skip:
the only skip in this suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from embedkube import User
from jitgrant.client._api import Connection
from jitgrant.console.cli import local_console
from jitgrant.console.server import Server
from jitgrant_testing.agents import Agents, start_environment

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
DOCS = HERE.parents[1] / "docs"


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


@dataclass
class People:
    agents: Agents
    kubeconfigs: dict[str, Path]

    @property
    def env(self) -> Any:
        return self.agents.env


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    """The agents' embedded cluster, plus alice and bob (group sre-oncall, bound to the chart's
    jitgrant-approver) and mallory (may patch requests in `agents`, approver of nothing)."""
    directory = tmp_path_factory.mktemp("people")
    environment = start_environment(directory)
    agents = next(environment)
    try:
        env = agents.env
        kubeconfigs = {"agent": agents.kubeconfig()}
        for name, groups in (("alice", ("sre-oncall",)), ("bob", ("sre-oncall",)), ("mallory", ("dev",))):
            token = env.cluster.add_user(User(name=name, uid=f"uid-{name}", groups=groups))
            path = directory / f"{name}.kubeconfig"
            env.cluster.write_kubeconfig(path, token=token, namespace="agents")
            kubeconfigs[name] = path
        env.allow_to_approve("agents", user="mallory")
        yield People(agents=agents, kubeconfigs=kubeconfigs)
    finally:
        environment.close()


@pytest.fixture
def console_for(people: People) -> Iterator[Callable[..., RunningConsole]]:
    """Start a console signed in as one of people.kubeconfigs; all stop at the end of the test."""
    started: list[RunningConsole] = []

    def start(who: str, *, audit_log: Path | None = None) -> RunningConsole:
        running = RunningConsole.start(people.kubeconfigs[who], audit_log=audit_log)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def chromium_or_skip() -> Path:
    if not CHROMIUM.exists():
        subprocess.run([str(HERE / "install-chromium.sh")], check=False, timeout=600)
    if not CHROMIUM.exists():
        message = "CHROMIUM NOT INSTALLED: the console's browser tests are SKIPPED (apt-get install chromium)"
        print("\n" + "!" * 20 + " " + message + " " + "!" * 20)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the run saves a screenshot of each page (pytest's temporary directory)."""
    return tmp_path_factory.mktemp("screenshots")


def save_to_docs(source: Path, name: str) -> None:
    """With JITGRANT_CONSOLE_DOCS=1 (run once by hand), a screenshot is copied into docs/ to commit."""
    if os.environ.get("JITGRANT_CONSOLE_DOCS") == "1":
        shutil.copyfile(source, DOCS / name)
