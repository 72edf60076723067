"""Operator logging: plain text for people, or one JSON object per line for log pipelines.

In JSON every line about an AccessRequest carries it as `"request": {"namespace", "name", "uid"}`,
so a pipeline can select all lines about one request without parsing messages. The request comes
from, in order: an explicit `extra={"request": {...}}`; kopf's per-object loggers (the `logger`
kwarg of handlers, which put the object's reference on each record as `k8s_ref`); or the request
bound to the current task with `bind_request()` (the scheduler does it around each reconcile, the
webhooks around each admission call). A uid not known where the binding is made is filled in from
the last watch event seen for that namespace/name (`remember_uid`).

A message may hold text an agent wrote (kopf logs a webhook's refusal, which can quote a
justification; a transition's message can carry a release reason). In text format every record is
one line: hidden characters in the message (newline, carriage return, ESC, bidi overrides) are
shown as escapes, so nothing can start a forged line or rewrite a terminal, and an exception's
traceback follows on lines that begin with `  | `. Where our code logs such text it passes it as a
quoted field (`models.text.log_field`). In JSON format the whole line is ASCII (non-ASCII escaped).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from jitgrant.models.text import visible

FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

RequestRef = dict[str, str]
_current: contextvars.ContextVar[RequestRef | None] = contextvars.ContextVar("jitgrant_request", default=None)
_uids: dict[tuple[str, str], str] = {}
_uids_lock = threading.Lock()
_MAX_REMEMBERED: Final = 100_000  # bounded: a flood of requests cannot grow it without limit


def remember_uid(namespace: str, name: str, uid: str | None) -> None:
    """Note the uid of namespace/name (from a watch event); None forgets it (the object is gone)."""
    with _uids_lock:
        if uid is None:
            _uids.pop((namespace, name), None)
        elif len(_uids) < _MAX_REMEMBERED or (namespace, name) in _uids:
            _uids[(namespace, name)] = uid


def bind_request(namespace: str, name: str, uid: str | None = None) -> contextvars.Token[RequestRef | None]:
    """Make the request the subject of this task's log lines until `unbind_request(token)`."""
    if not uid:
        with _uids_lock:
            uid = _uids.get((namespace, name), "")
    return _current.set({"namespace": namespace, "name": name, "uid": uid})


def unbind_request(token: contextvars.Token[RequestRef | None]) -> None:
    _current.reset(token)


@contextmanager
def about_request(namespace: str, name: str, uid: str | None = None) -> Iterator[None]:
    token = bind_request(namespace, name, uid)
    try:
        yield
    finally:
        unbind_request(token)


def request_of(record: logging.LogRecord) -> RequestRef | None:
    explicit = getattr(record, "request", None)
    if isinstance(explicit, Mapping):
        return {key: str(explicit.get(key) or "") for key in ("namespace", "name", "uid")}
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, Mapping) and ref.get("kind") in (None, "AccessRequest"):
        return {key: str(ref.get(key) or "") for key in ("namespace", "name", "uid")}
    return _current.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, request, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = request_of(record)
        if request is not None:
            line["request"] = request
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, one record per line whatever its message holds (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = visible(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        follow: list[str] = []
        if record.exc_info:
            follow.append(self.formatException(record.exc_info))
        if record.stack_info:
            follow.append(self.formatStack(record.stack_info))
        for block in follow:
            line += "".join(f"\n  | {visible(part)}" for part in block.splitlines())
        return line


# The refusal the current webhook call just answered with (telemetry.measured notes it): kopf then logs
# it as "Webhook ... failed permanently" at ERROR, in the same task and context.
_refusal: contextvars.ContextVar[str | None] = contextvars.ContextVar("jitgrant_refusal", default=None)


def note_refusal(message: str) -> None:
    """The current admission call refused with `message`: a policy outcome, not a fault."""
    _refusal.set(message)


class RefusalsAreNotErrors(logging.Filter):
    """kopf logs every webhook refusal at ERROR ("Webhook 'x' failed permanently: <message>"). A
    refusal is the answer working (an agent asked for more than the policy allows, someone who is not
    an approver tried to approve): logged at INFO, so ERROR is left for faults (a refusal for want of
    a receipt key, code 500, stays ERROR: telemetry notes only codes below 500)."""

    def filter(self, record: logging.LogRecord) -> bool:
        refused = _refusal.get()
        if refused is None or record.levelno != logging.ERROR or record.exc_info:
            return True
        if not record.getMessage().endswith(f"failed permanently: {refused}"):
            return True
        _refusal.set(None)
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


_REFUSALS_FILTER: Final = RefusalsAreNotErrors()


def quiet_refusals() -> None:
    """Install RefusalsAreNotErrors on kopf's per-object logger (idempotent)."""
    kopf_objects = logging.getLogger("kopf.objects")
    if _REFUSALS_FILTER not in kopf_objects.filters:
        kopf_objects.addFilter(_REFUSALS_FILTER)


def configure(*, level: str = "info", fmt: str = "text") -> None:
    """Set up the root logger once, at start-up (`jitgrant run --log-level/--log-format`)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_refusals()
