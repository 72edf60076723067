"""`--log-format json`: one JSON object per line, and every line about a request names it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from jitgrant.logs import JsonFormatter, about_request, configure, remember_uid


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
