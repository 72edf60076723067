"""The chart passes only flags `jitgrant run` accepts: a rendered Deployment's args parse."""

from __future__ import annotations

from typing import Any

import pytest

from jitgrant.cli.main import build_parser

from .conftest import COMBINATIONS, render


def _operator_args(manifests: list[dict[str, Any]]) -> list[str]:
    [deployment] = [m for m in manifests if m["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_rendered_operator_args_are_accepted_by_the_cli(chart: Any, combination: str) -> None:
    args = _operator_args(render(chart, COMBINATIONS[combination]))
    parsed = build_parser().parse_args(args)
    assert parsed.command == "run"
    assert parsed.webhook_port == 9443 and parsed.health_port and parsed.metrics_port
    assert parsed.eks == bool(COMBINATIONS[combination].get("eks", {}).get("roleArn"))


def test_concurrency_reaches_the_operator_and_bad_values_are_refused_naming_the_flag(
    chart: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _operator_args(render(chart, {"concurrency": 32}))
    assert build_parser().parse_args(args).concurrency == 32
    assert build_parser().parse_args(_operator_args(render(chart, {}))).concurrency == 8
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--concurrency", "0"])
    assert "argument --concurrency: '0' is not accepted: expected a whole number from 1 to 256" in (
        capsys.readouterr().err
    )
