"""`jitgrant policy test DIR`: the examples' cases pass, a wrong expectation fails with the actual
reason and message, and a malformed test file is named down to the case and field."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from jitgrant.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the examples' policies and ClusterRole, without their tests."""
    root = tmp_path / "repo"
    for part in ("oncall-restart", "prod-approval"):
        shutil.copytree(EXAMPLES / part, root / part)
    return root


def write_tests(root: Path, body: str, name: str = "tests.yaml") -> Path:
    path = root / "tests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "apiVersion: jitgrant.dev/v1alpha1\nkind: GrantPolicyTest\n"
    path.write_text(header + textwrap.dedent(body))
    return path


CASE = """\
cases:
  - name: staging restart
    identity:
      serviceAccount: {namespace: agents, name: oncall-agent}
    request:
      policy: oncall-restart
      namespace: payments
      clusterRole: jit-restart-checkout
      justification: INC-1 stuck
    expect:
      outcome: %s
"""


def test_the_examples_and_their_expected_outcomes_agree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "test", str(EXAMPLES))
    assert code == 0, out
    assert "FAIL" not in out
    # One tests file per example policy, each with cases.
    tested = {line.split()[1] for line in out.splitlines() if line.startswith("PASS")}
    assert {Path(p).name for p in tested} == {
        "oncall-restart.yaml",
        "prod-approval.yaml",
        "read-logs-inline.yaml",
        "hydra-agents.yaml",
        "guardrails.yaml",
        "by-label.yaml",
    }


def test_a_wrong_expectation_fails_with_the_actual_reason_and_message(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tests(repo, CASE % "pending-approval")
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 1
    assert "FAIL" in out and "outcome: expected pending-approval, got allowed" in out
    assert "actual: allowed (AutoApproved): policy oncall-restart approves this scope without a human" in out


def test_json_output_carries_expected_and_actual(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(repo, CASE % "denied")
    code, out, _ = run(capsys, "policy", "test", str(repo), "-o", "json")
    assert code == 1
    document = json.loads(out)
    assert document["summary"] == {"cases": 1, "passed": 0, "failed": 1, "errors": 0}
    (result,) = document["results"]
    assert result["expected"]["outcome"] == "denied"
    assert result["actual"]["outcome"] == "allowed" and result["actual"]["duration"] == "10m"


def test_junit_output_marks_the_failing_case(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(repo, CASE % "denied")
    code, out, _ = run(capsys, "policy", "test", str(repo), "-o", "junit")
    assert code == 1
    suite = ET.fromstring(out.split("\n", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case is not None and case.get("name") == "staging restart"
    failure = case.find("failure")
    assert failure is not None and "got allowed" in (failure.get("message") or "")


def test_a_passing_case_exits_zero(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_tests(repo, CASE % "allowed")
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 0, out
    assert "1 of 1 case(s) passed" in out


def test_a_malformed_case_names_the_file_the_case_and_the_field(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_tests(repo, CASE % "allow")
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 1
    assert f"{path}: GrantPolicyTest is malformed: case 1 'staging restart': expect.outcome:" in out
    assert "'allowed', 'pending-approval' or 'denied'" in out


def test_an_identity_naming_two_kinds_is_refused_by_field(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (CASE % "allowed").replace(
        "serviceAccount: {namespace: agents, name: oncall-agent}",
        "serviceAccount: {namespace: agents, name: oncall-agent}\n      user: alice",
    )
    path = write_tests(repo, body)
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 1
    assert f"{path}: GrantPolicyTest is malformed: case 1 'staging restart': identity:" in out
    assert "exactly one of user, serviceAccount or oidc" in out


def test_a_typed_requester_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (CASE % "allowed").replace("justification: INC-1 stuck", "requester: {username: root}")
    write_tests(repo, body)
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 1
    assert "request.requester is set by the webhook from identity" in out


def test_an_invalid_policy_denies_as_the_operator_would(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = repo / "oncall-restart" / "policy.yaml"
    policy.write_text(
        policy.read_text().replace("      - namespace: agents", "      - namespace: agents\n        bogus: 1")
    )
    write_tests(repo, CASE % "denied" + "      reason: PolicyInvalid\n")
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 0, out


def test_no_tests_at_all_is_a_failure_not_a_pass(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "test", str(repo))
    assert code == 1
    assert "no GrantPolicyTest documents found" in out


def test_a_directory_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "policy", "test", str(tmp_path / "nope"))
    assert code == 2
    assert "no such file or directory" in err
