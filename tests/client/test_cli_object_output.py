"""Issue 24 §6: `-o` on the commands that write an object: `request` prints the created AccessRequest,
`release` the released one, in kubectl's shapes (json, yaml, name, jsonpath)."""

from __future__ import annotations

import json

import pytest
import yaml

from jitgrant.cli.main import main
from jitgrant_testing.agents import NS, REASON, Agents

ASK = ["--policy", "oncall-restart", "--target-namespace", "payments"]
ASK += ["--cluster-role", "jit-restart-checkout"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_request_and_release_print_the_object_in_the_format_asked(
    agents: Agents, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = ["--kubeconfig", str(agents.kubeconfig())]
    code, out, err = run(capsys, "request", *ASK, "--justification", REASON, "-o", "json", *kubeconfig)
    assert code == 0, err
    created = json.loads(out)
    assert created["kind"] == "AccessRequest" and created["apiVersion"] == "jitgrant.dev/v1alpha1"
    assert created["spec"]["justification"] == REASON and created["metadata"]["namespace"] == NS
    name = created["metadata"]["name"]

    code, out, err = run(capsys, "request", *ASK, "--justification", REASON, "-o", "name", *kubeconfig)
    assert code == 0 and out.strip().startswith("accessrequest.jitgrant.dev/oncall-restart-"), (out, err)
    code, out, err = run(capsys, "request", *ASK, "--justification", REASON, "-o", "yaml", *kubeconfig)
    assert code == 0 and yaml.safe_load(out)["spec"]["policy"] == "oncall-restart", err

    code, out, err = run(capsys, "release", name, "-o", "jsonpath={.status.phase}", *kubeconfig)
    assert code == 0 and out.strip() == "Revoked", (out, err)


def test_an_unknown_output_format_is_a_usage_error_listing_the_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["request", *ASK, "--justification", REASON, "-o", "xml"])
    assert exited.value.code == 2
    assert "unknown output format 'xml'" in capsys.readouterr().err
