"""What the operator reports about its own work: admission answers, live requests by phase, the
health of each audit sink, and which request each log line is about.

None of it decides anything; it reads what the handlers already see. Labels stay bounded (webhook
id, operation, outcome, a Kubernetes status reason, policy, phase, sink): a request is a key in
memory, never a label.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import kopf
from kopf.on import WebhookDecorator

from jitgrant.logs import bind_request, note_refusal, remember_uid, unbind_request
from jitgrant.metrics import Metrics
from jitgrant.models import API_GROUP, API_VERSION

# Kubernetes' StatusReason for the codes an admission refusal carries.
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_reason(code: int | None) -> str:
    """A bounded label for a refusal's HTTP code: Kubernetes' reason name, or the code's class."""
    if code in _STATUS_REASONS:
        return _STATUS_REASONS[code]
    if code is None:
        return "InternalError"
    try:
        return HTTPStatus(code).phrase.replace(" ", "")
    except ValueError:
        return f"{code // 100}xx"


def _metrics(memo: Any) -> Metrics | None:
    metrics = getattr(getattr(memo, "runtime", None), "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None


def measured(webhook: str, register: WebhookDecorator) -> WebhookDecorator:
    """Register `fn` through `register` (a kopf webhook decorator) wrapped so that each call is
    timed and counted by outcome, and its log lines name the request under review. Returns `fn`
    itself, so registering it again on another registry wraps the original once more, not twice."""

    def apply(fn: Any) -> Any:
        @functools.wraps(fn)
        async def observed(**kwargs: Any) -> Any:
            body = kwargs.get("body")
            meta: Mapping[str, Any] = (body.get("metadata") if isinstance(body, Mapping) else None) or {}
            token = bind_request(
                str(meta.get("namespace") or ""), str(meta.get("name") or ""), meta.get("uid")
            )
            outcome, reason = "allowed", ""
            start = time.perf_counter()
            try:
                return await fn(**kwargs)
            except kopf.AdmissionError as exc:
                outcome, reason = "refused", status_reason(exc.code)
                if exc.code is None or exc.code < 500:
                    note_refusal(str(exc) or repr(exc))  # logged at INFO by logs.RefusalsAreNotErrors
                raise
            except Exception:
                outcome, reason = "error", "InternalError"
                raise
            finally:
                unbind_request(token)
                metrics = _metrics(kwargs.get("memo"))
                if metrics is not None:
                    metrics.observe_webhook(
                        webhook=webhook,
                        operation=str(kwargs.get("operation") or ""),
                        outcome=outcome,
                        reason=reason,
                        seconds=time.perf_counter() - start,
                    )

        register(observed)
        return fn

    return apply


@kopf.on.event(API_GROUP, API_VERSION, "accessrequests", id="count-by-phase")
async def count_by_phase(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Keep jitgrant_requests_in_phase and the uid behind each namespace/name (for log lines)."""
    namespace, name, uid = body.metadata.namespace or "", body.metadata.name or "", body.metadata.uid or ""
    metrics = _metrics(memo)
    if type == "DELETED":
        remember_uid(namespace, name, None)
        if metrics is not None:
            metrics.forget_request(uid)
        return
    remember_uid(namespace, name, uid)
    if metrics is not None:
        spec, status = body.get("spec") or {}, body.get("status") or {}
        metrics.track_request(uid, policy=str(spec.get("policy") or ""), phase=status.get("phase"))


@kopf.on.startup(id="watch-audit-sinks")
async def watch_audit_sinks(memo: kopf.Memo, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    metrics = _metrics(memo)
    audit = getattr(runtime, "audit", None)
    if metrics is not None and audit is not None:
        metrics.watch_audit_sinks(last_errors=audit.last_errors, undelivered=audit.undelivered)
