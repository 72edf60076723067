"""Issue 24 §7: `request --wait` says a denial once (with the exit code's words), and `list` shows
when a request ended instead of the expiry it never reached."""

from __future__ import annotations

import pytest

from jitgrant.cli.main import main
from jitgrant_testing.agents import NS, REASON, Agents

ASK = [
    "--policy",
    "oncall-restart",
    "--target-namespace",
    "payments",
    "--cluster-role",
    "jit-restart-checkout",
    "--justification",
    REASON,
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_denial_under_wait_is_printed_once(agents: Agents, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = str(agents.kubeconfig())
    code, _, err = run(capsys, "request", *ASK, "--for", "2h", "--wait", "--kubeconfig", kubeconfig)
    assert code == 10, err
    assert err.count("maxDuration 15m") == 1, err
    assert "denied: PolicyRefused:" in err


def test_a_released_row_shows_when_it_ended_not_the_planned_expiry(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(agents.kubeconfig())
    code, out, err = run(capsys, "request", *ASK, "--for", "10m", "--wait", "--kubeconfig", kubeconfig)
    assert code == 0, err
    name = out.strip()
    planned = agents.env.get_request(NS, name)["status"]["expiresAt"]
    assert run(capsys, "release", name, "--kubeconfig", kubeconfig)[0] == 0
    ended = agents.env.get_request(NS, name)["status"]["endedAt"]
    code, out, err = run(capsys, "list", "-n", NS, "--kubeconfig", kubeconfig)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(name))
    assert f"ended:{ended}" in row and planned not in row, row
