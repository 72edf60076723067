"""The demo's mcp-agent scenario passes: every step it prints was checked against the cluster."""

from __future__ import annotations

import pytest

from jitgrant_testing.demo.scenarios import run_scenarios


def test_the_mcp_agent_scenario_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_scenarios("mcp-agent") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "progress: pending approval: 1 more approval(s) needed (0 of 1)" in out
    assert "Released by requester system:serviceaccount:agents:oncall-agent: restart done" in out
