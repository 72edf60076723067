"""`jitgrant who-can` against the real kube-apiserver answers what it answers from the files the
cluster was set up from (the real_env fixture applies examples/oncall-restart/)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jitgrant.cli.main import main
from jitgrant_testing.controlplane import ControlPlane
from jitgrant_testing.environment import EXAMPLES
from jitgrant_testing.realenv import RealEnvironment

ASK = ["who-can", "patch", "deployments.apps", "-n", "payments", "--name", "checkout", "-o", "json"]


def _routes(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    routes: list[dict[str, Any]] = json.loads(captured.out)["routes"]
    return sorted(routes, key=lambda r: (r["identity"], r["policy"], r["grant"]))


def test_who_can_on_the_real_cluster_equals_who_can_from_the_files(
    real_env: RealEnvironment, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    live = _routes(capsys, *ASK, "--kubeconfig", str(control_plane.kubeconfig_path("admin")))
    offline = _routes(capsys, *ASK, "-f", str(EXAMPLES / "oncall-restart"))
    # Other tests of the session may add policies of their own; the examples' must answer alike.
    assert [r for r in live if r["policy"] == "oncall-restart"] == offline
    live = [r for r in live if r["policy"] == "oncall-restart"]
    assert [(r["identity"], r["policy"], r["approval"]["needed"]) for r in live] == [
        ("system:serviceaccount:agents:oncall-agent", "oncall-restart", 0)
    ]


def test_exposure_on_the_real_cluster_equals_exposure_from_the_files(
    real_env: RealEnvironment, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = "system:serviceaccount:agents:oncall-agent"

    def identity(*argv: str) -> dict[str, Any]:
        code = main(["exposure", "--identity", agent, "-o", "json", *argv])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        (found,) = json.loads(captured.out)["identities"]
        return dict(found)

    live = identity("--kubeconfig", str(control_plane.kubeconfig_path("admin")))
    offline = identity("-f", str(EXAMPLES / "oncall-restart"))
    # Other tests of the session may add policies naming this agent; the example's must answer alike.
    for route_kind in ("automatically", "withApproval"):
        ours = [r for r in live[route_kind] if r["policy"] == "oncall-restart"]
        assert ours == offline[route_kind], route_kind
    assert [r["policy"] for r in offline["automatically"]] == ["oncall-restart"]
