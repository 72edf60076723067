"""Issue 24 §4: the justification is `--justification` on the CLI, as `justification` in the CRD, the
Python client and MCP; `--reason` (what 0.1 shipped) still works for a release, with a warning."""

from __future__ import annotations

import contextlib
import io

import pytest

from jitgrant.cli.main import main

ASK = ["request", "--policy", "p", "--target-namespace", "payments", "--cluster-role", "r"]


def test_request_without_a_justification_is_a_usage_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(ASK) == 2
    err = capsys.readouterr().err
    assert "--justification is required" in err and "--justification 'INC-4711" in err


def test_the_deprecated_reason_flag_still_sets_the_justification_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A bad --for stops the command after the justification was read, before any API call.
    assert main([*ASK, "--reason", "INC-1", "--for", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--reason is deprecated" in err and "use --justification" in err
    assert "--for:" in err and "--justification is required" not in err


def test_help_shows_justification_and_not_the_deprecated_spelling() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["request", "--help"])
    assert "--justification" in out.getvalue() and "--reason" not in out.getvalue()
