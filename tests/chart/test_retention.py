"""`finishedRetention`: rendered as `--finished-retention`, parsed by `jitgrant run` into the
setting, and refused by the schema (with the value's path) when it is not a retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import helm_python as helm
import pytest

from jitgrant.cli.main import build_parser
from jitgrant.cli.run import settings_from_args

from .conftest import NAMESPACE, RELEASE, only, render


def _args(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[str]:
    args: list[str] = only(render(chart, values), "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    return args


def _flag(args: list[str]) -> str:
    return args[args.index("--finished-retention") + 1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, timedelta(days=7)),
        ("2s", timedelta(seconds=2)),
        ("720h", timedelta(days=30)),
        ("0", timedelta(0)),
    ],
)
def test_the_retention_reaches_the_operator(
    chart: helm.Chart, value: str | None, expected: timedelta, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _args(chart, None if value is None else {"finishedRetention": value})
    assert _flag(args) == (value or "168h")
    monkeypatch.setenv("OPERATOR_SERVICE_ACCOUNT", "jitgrant")
    parsed = build_parser().parse_args([a.replace("$(POD_NAMESPACE)", NAMESPACE) for a in args])
    parsed.receipt_key_file = None  # the chart's key file exists only in the pod
    assert settings_from_args(parsed).finished_retention == expected


@pytest.mark.parametrize("value", ["7d", "1.5h", "-1h", "", "forever", 168])
def test_the_schema_refuses_what_is_not_a_retention(chart: helm.Chart, value: object) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render({"finishedRetention": value}, name=RELEASE, namespace=NAMESPACE)
    assert "finishedRetention" in str(refused.value)


def test_the_schema_describes_it(chart: helm.Chart) -> None:
    assert chart.schema is not None
    described = chart.schema["properties"]["finishedRetention"]["description"]
    assert "keeps finished requests forever" in described and "168h" in described


@pytest.mark.parametrize("value", ["7d", "forever", "-1h", "1.5h"])
def test_the_operator_refuses_a_wrong_retention_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["run", f"--finished-retention={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --finished-retention" in err and repr(value) in err
    assert '"0" (keep forever) or a duration like 168h' in err
