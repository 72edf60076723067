"""The console's fixtures: the embedded cluster with agents and approvers, consoles signed in as each
person (each in its own event-loop thread, as `jitgrant console` runs), and Debian's Chromium driven
by Playwright. Without Chromium (and no way to install it) the browser tests say so loudly and skip:
the only skip in this suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from embedkube import User
from jitgrant_testing.agents import Agents, start_environment

from .harness import RunningConsole, launch_browser


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch_browser()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the run saves a screenshot of each page (pytest's temporary directory)."""
    return tmp_path_factory.mktemp("screenshots")
