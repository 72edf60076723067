"""kubectl's habits, on the fast tier: the CLI end to end over MockTransport (jitgrant_testing.fakeapi)
instead of an API server; the kubeconfig, flags, client and printing are the real ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jitgrant.cli.main import main
from jitgrant.client import Connection
from jitgrant.client.transport import Transport
from jitgrant_testing.fakeapi import GROUP, FakeApi, access_request, grant_policy

ASK = ["--policy", "prod-restart", "--target-namespace", "payments", "--cluster-role", "jit-restart-checkout"]
ASK += ["--justification", "INC-1 checkout stuck"]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.requests["r1"] = access_request("r1", phase="Pending", reason="AwaitingApproval", message="waiting")

    def factory(_: object) -> Transport:
        return fake.transport

    monkeypatch.setattr(Connection, "transport_factory", factory)
    monkeypatch.setattr(Connection, "blocking_transport_factory", factory)
    yield fake


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "config"
    config = {
        "clusters": [{"name": "c", "cluster": {"server": "https://api.test"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "agents"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_get_prints_a_row_and_describe_the_prose(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "get", "r1", "--kubeconfig", kubeconfig)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAME", "PHASE", "REQUESTER"] and row.split()[:2] == ["r1", "Pending"]
    code, out, err = run(capsys, "describe", "r1", "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert "INC-1 checkout stuck" in out and not out.startswith("NAME")


def test_approve_prints_the_object_it_changed_in_the_format_asked(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fake stores the annotation as given (no webhook turns it into a receipt): the command says so.
    code, _, err = run(capsys, "approve", "r1", "-o", "json", "--kubeconfig", kubeconfig)
    assert code != 0 and "webhook did not handle it" in err
    api.requests["r2"] = access_request("r2", phase="Active")
    code, out, err = run(capsys, "revoke", "r2", "--reason", "done", "-o", "json", "--kubeconfig", kubeconfig)
    assert code == 0, err
    revoked = json.loads(out)
    assert revoked["metadata"]["name"] == "r2"
    assert revoked["metadata"]["annotations"]["jitgrant.dev/revoke"] == "done"
    code, out, err = run(capsys, "revoke", "r2", "--reason", "done", "-o", "name", "--kubeconfig", kubeconfig)
    assert (code, out) == (0, "accessrequest.jitgrant.dev/r2\n"), err


def test_custom_columns(api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = "custom-columns=NAME:.metadata.name,PHASE:.status.phase,ROLE:.spec.clusterRole,X:.nope"
    code, out, err = run(capsys, "list", "-o", spec, "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [
        ["NAME", "PHASE", "ROLE", "X"],
        ["r1", "Pending", "jit-restart-checkout", "<none>"],
    ]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["list", "--request-timeout", "soon"], "--request-timeout 'soon'"),
        (["list", "-o", "custom-columns=NAME"], "custom-columns=NAME"),
        (["request", *ASK, "--dry-run=maybe"], "'maybe'"),
    ],
)
def test_usage_errors_exit_2_naming_the_value(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    try:
        code, _, err = run(capsys, *argv, "--kubeconfig", kubeconfig)
    except SystemExit as exited:  # argparse's own usage errors
        code, err = int(str(exited.code)), capsys.readouterr().err
    assert code == 2 and named in err, err
    assert api.transport.requests == [], "a usage error reached the API server"


def test_request_timeout_is_per_call(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "get", "r1", "--request-timeout", "2m", "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert api.transport.requests[-1].total_timeout == 120


@pytest.mark.parametrize("flag", ["--dry-run", "--dry-run=server"])
def test_dry_run_server_asks_the_operator_and_files_nothing(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    run(capsys, "request", *ASK, flag, "--kubeconfig", kubeconfig)
    [create] = [r for r in api.transport.requests if r.method == "POST" and "accessrequests" in r.path]
    assert create.query == {"dryRun": "All"}


def test_dry_run_client_prints_the_request_and_sends_nothing(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "request", *ASK, "--dry-run=client", "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert yaml.safe_load(out)["spec"]["clusterRole"] == "jit-restart-checkout"
    assert not [r for r in api.transport.requests if r.path.startswith(GROUP)]


def test_timeout_is_a_deprecated_spelling_of_wait_timeout(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err = run(capsys, "request", *ASK, "--dry-run", "--timeout", "5m", "--kubeconfig", kubeconfig)
    assert "--timeout is deprecated" in err and "--wait-timeout" in err
    _, _, err = run(capsys, "request", *ASK, "--dry-run", "--wait-timeout", "5m", "--kubeconfig", kubeconfig)
    assert "deprecated" not in err


def test_release_takes_wide_and_custom_columns_like_every_object_command(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api.requests["r3"] = access_request("r3", phase="Revoked", reason="Released")
    columns = "custom-columns=NAME:.metadata.name,PHASE:.status.phase"
    code, out, err = run(capsys, "release", "r3", "-o", columns, "--kubeconfig", kubeconfig)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [["NAME", "PHASE"], ["r3", "Revoked"]]
    code, out, err = run(capsys, "release", "r3", "-o", "wide", "--kubeconfig", kubeconfig)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAMESPACE", "NAME", "PHASE"] and "REASON" in header
    assert row.split()[:3] == ["agents", "r3", "Revoked"] and "Released" in row


def test_policies_take_kubectls_output_formats(
    api: FakeApi, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    api.policies = {name: grant_policy(name) for name in ("oncall-restart", "staging-restart")}
    code, out, err = run(capsys, "policies", "-o", "name", "--kubeconfig", kubeconfig)
    assert (code, out) == (
        0,
        "grantpolicy.jitgrant.dev/oncall-restart\ngrantpolicy.jitgrant.dev/staging-restart\n",
    ), err
    code, out, err = run(capsys, "policies", "-o", "yaml", "--kubeconfig", kubeconfig)
    assert code == 0 and [item["policy"] for item in yaml.safe_load(out)["items"]] == [
        "oncall-restart",
        "staging-restart",
    ]
    code, out, err = run(capsys, "policies", "-o", "jsonpath={.items[*].policy}", "--kubeconfig", kubeconfig)
    assert (code, out.strip()) == (0, "oncall-restart staging-restart"), err
    code, out, err = run(
        capsys,
        "policies",
        "-o",
        "custom-columns=POLICY:.policy,MAX:.maxDuration",
        "--kubeconfig",
        kubeconfig,
    )
    assert [line.split() for line in out.splitlines()] == [
        ["POLICY", "MAX"],
        ["oncall-restart", "15m"],
        ["staging-restart", "15m"],
    ], err
    code, out, err = run(capsys, "policies", "-o", "json", "--kubeconfig", kubeconfig)
    assert [g["policy"] for g in json.loads(out)] == [
        "oncall-restart",
        "staging-restart",
    ]  # an array, as before
