"""One playground (the `jitgrant run --embedded` set-up: operator, example policies, the chart's
requester/approver ClusterRoles, kubeconfigs) per module, and a way to run the CLI as someone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from embedkube import User
from jitgrant.cli.main import main
from jitgrant_testing.environment import EXAMPLES, load_manifests
from jitgrant_testing.playground import Playground

NS = "agents"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    playground: Playground
    capsys: pytest.CaptureFixture[str]

    def kubeconfig(self, who: str) -> Path:
        if who not in self.playground.kubeconfigs:
            assert self.playground.state_dir is not None
            token = self.playground.env.cluster.add_user(User(name=who, uid=f"uid-{who}"))
            path = self.playground.state_dir / f"{who}.kubeconfig"
            self.playground.env.cluster.write_kubeconfig(path, token=token, namespace=NS)
            self.playground.kubeconfigs[who] = path
        return self.playground.kubeconfigs[who]

    def __call__(self, who: str | None, *args: str) -> Result:
        self.capsys.readouterr()
        flags = ["--kubeconfig", str(self.kubeconfig(who))] if who else []
        code = main([*args, *flags])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture(scope="module")
def playground() -> Iterator[Playground]:
    with Playground() as running:
        yield running


@pytest.fixture
def cli(playground: Playground, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(playground, capsys)


def file_request(
    playground: Playground, name: str, *, example: str = "restart-checkout-prod.yaml", **metadata: Any
) -> dict[str, Any]:
    """The agent files an example request (as the agent's kubeconfig would), under another name."""
    [manifest] = load_manifests(EXAMPLES / "requests" / example)
    manifest["metadata"] = {**manifest["metadata"], "name": name, **metadata}
    env = playground.env
    agent = env.client_for_service_account(NS, "oncall-agent")
    return env.create_request(manifest, client=agent)
