"""`--log-format json`: one JSON object per line, and every line about a request names it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from hostile_text import ACTING, HOSTILE
from jitgrant.logs import JsonFormatter, TextFormatter, about_request, configure, remember_uid
from jitgrant.models.text import log_field


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """What the JSON formatter writes for records of the `jitgrant.test` logger."""
    written: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("jitgrant.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield written
    finally:
        logger.removeHandler(handler)
        remember_uid("agents", "restart-checkout", None)


def test_a_line_inside_a_bound_request_names_it(lines: list[str]) -> None:
    log = logging.getLogger("jitgrant.test")
    remember_uid("agents", "restart-checkout", "5f1c-uid")
    with about_request("agents", "restart-checkout"):
        log.info("agents/restart-checkout -> Active: granted for %s", "15m")
    log.info("sweep removed %d objects", 0)

    about, unrelated = (json.loads(line) for line in lines)
    assert about["request"] == {"namespace": "agents", "name": "restart-checkout", "uid": "5f1c-uid"}
    assert about["message"] == "agents/restart-checkout -> Active: granted for 15m"
    assert about["level"] == "info" and about["logger"] == "jitgrant.test"
    assert about["time"].endswith("+00:00")
    assert "request" not in unrelated


def test_kopf_object_loggers_and_explicit_extras_name_the_request(lines: list[str]) -> None:
    log = logging.getLogger("jitgrant.test")
    # kopf's per-object logger puts the object's reference on each record as k8s_ref.
    ref = {"apiVersion": "jitgrant.dev/v1alpha1", "kind": "AccessRequest", "namespace": "agents"}
    log.info("Handler 'reconcile-on-change' succeeded.", extra={"k8s_ref": {**ref, "name": "a", "uid": "u1"}})
    log.warning("explicit", extra={"request": {"namespace": "agents", "name": "b", "uid": "u2"}})
    try:
        raise RuntimeError("target unreachable")
    except RuntimeError:
        with about_request("agents", "c", "u3"):
            log.exception("reconciling agents/c failed")

    kopf_line, explicit, failed = (json.loads(line) for line in lines)
    assert kopf_line["request"] == {"namespace": "agents", "name": "a", "uid": "u1"}
    assert explicit["request"]["uid"] == "u2" and explicit["level"] == "warning"
    assert failed["request"]["name"] == "c"
    assert "RuntimeError: target unreachable" in failed["exception"]


def test_unknown_format_or_level_is_refused_naming_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"log format 'yaml': expected one of text, json"):
        configure(fmt="yaml")
    with pytest.raises(ValueError, match=r"log level 'loud': expected one of debug, info, warning, error"):
        configure(level="loud")


# --- Issue 20 §3: agent text in log lines ----------------------------------------------------------

HOSTILE_CASES = sorted(HOSTILE)


def text_lines(message: str, *args: object, exc: BaseException | None = None) -> str:
    """What `--log-format text` (the formatter `configure` installs) writes for one record."""
    record = logging.LogRecord("jitgrant.reconcile", logging.INFO, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return TextFormatter().format(record)


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_text_log_record_is_one_line_whatever_the_agent_wrote(case: str) -> None:
    text = HOSTILE[case]
    # kopf logs a webhook's refusal verbatim, and that refusal may quote the justification.
    line = text_lines("Webhook 'stamp-requester' failed permanently: justification '%s' is refused", text)
    assert "\n" not in line and "\r" not in line
    for char in ACTING:
        assert char not in line
    assert len(line.splitlines()) == 1  # a forged "... INFO ..." stays inside this record's line


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_our_own_lines_carry_agent_text_as_one_quoted_field(case: str) -> None:
    text = HOSTILE[case]
    line = text_lines("agents/x -> Revoked: message=%s", log_field(f"Released by requester bot: {text}"))
    _, _, field = line.partition(" message=")
    # The field is one double-quoted string that ends where the line ends: no quote inside it closes
    # it early, and decoding it (as JSON) gives back what was written, hidden characters spelled out.
    assert field.startswith('"') and field.endswith('"')
    assert '"' not in field[1:-1].replace('\\"', "")
    assert "\n" not in field
    assert log_field('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'


def test_a_traceback_follows_on_marked_lines_that_cannot_pass_for_records() -> None:
    try:
        raise RuntimeError("INC-1\n2026-12-07 10:00:00,000 INFO jitgrant.reconcile: forged")
    except RuntimeError as error:
        line = text_lines("reconciling agents/c failed", exc=error)
    first, *rest = line.split("\n")
    assert first.endswith("INFO jitgrant.reconcile: reconciling agents/c failed")
    assert rest and all(part.startswith("  | ") for part in rest)


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_a_json_log_line_is_ascii_and_decodes_to_what_was_written(lines: list[str], case: str) -> None:
    logging.getLogger("jitgrant.test").info("refused: %s", HOSTILE[case])
    [line] = lines
    assert line.isascii() and "\n" not in line
    assert json.loads(line)["message"] == f"refused: {HOSTILE[case]}"
