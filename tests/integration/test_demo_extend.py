"""`jitgrant demo --scenario extend` passes: every step checked against the cluster."""

from __future__ import annotations

import pytest

from jitgrant_testing.demo.scenarios import run_scenarios


def test_the_extend_scenario_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_scenarios("extend") == 0, capsys.readouterr().err
