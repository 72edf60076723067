"""Posting notices without ever holding up a grant.

`Notifier.transition()` is called from the reconciler's one transition-recording point: it builds
the notice (pure, microseconds) and puts it on a bounded queue without waiting. One worker thread
posts with a per-notifier timeout. A full queue drops the notice; a failed post is logged; both
are counted, so an alert can catch a receiver that stopped listening.
"""

from __future__ import annotations

import logging
import queue
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from jitgrant.httpbody import BodyError, read_body_sync
from jitgrant.models import AccessRequest, Phase
from jitgrant.models.policy import PolicyNotifications
from jitgrant.models.text import json_body
from jitgrant.notify.config import NotifierConfig, NotifyConfig
from jitgrant.notify.messages import Notice, notice_for, render
from jitgrant.policy.notifications import posting_notifiers

log = logging.getLogger(__name__)
_STOP = object()
# Slack answers "ok" or an error word ("invalid_payload", "no_service"), Teams a line of text: a reply
# bigger than this is not one of theirs, and only its start is worth a log line anyway.
MAX_REPLY_BYTES = 64 * 1024


def _reply(response: Any, notifier: NotifierConfig) -> str:
    """The reply's text (what Slack or Teams said), read whole by the one helper, for the log."""
    body = read_body_sync(
        response,
        limit=MAX_REPLY_BYTES,
        what=f"the reply of {notifier.type} notifier {notifier.name}",
        declared=getattr(response, "length", None),
    )
    return body.decode("utf-8", errors="replace").strip()[:300]


class Notifier:
    def __init__(
        self,
        notifiers: Sequence[NotifierConfig],
        *,
        registry: CollectorRegistry | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.notifiers = tuple(notifiers)
        self.outcomes = Counter(
            "jitgrant_notifications_total",
            "Notifications by notifier, event and result (sent, failed, dropped).",
            ["notifier", "event", "result"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._worker = threading.Thread(target=self._run, name="jitgrant-notify", daemon=True)
        self._worker.start()

    @classmethod
    def from_config(cls, config: NotifyConfig, *, registry: CollectorRegistry | None = None) -> Notifier:
        return cls(config.notifiers, registry=registry, queue_size=config.queue_size)

    def transition(
        self,
        request: AccessRequest,
        *,
        phase: Phase,
        reason: str,
        message: str,
        expires_at: datetime | None = None,
        notifications: PolicyNotifications | None = None,
    ) -> None:
        """Queue the notices for one transition; never raises, never waits. `notifications`: the
        policy's spec.notifications, which chooses notifiers and events instead of the defaults."""
        try:
            notice = notice_for(request, phase=phase, reason=reason, message=message, expires_at=expires_at)
            if notice is None:
                return
            configured = [(notifier.name, notifier.events) for notifier in self.notifiers]
            posting = posting_notifiers(notice.event, configured, notifications)
            for notifier in self.notifiers:
                if notifier.name in posting:
                    self._enqueue(notifier, notice)
        except Exception:  # a notification must never fail a transition
            log.exception("notify: could not build the notice for %s", request.metadata.name)

    def _enqueue(self, notifier: NotifierConfig, notice: Notice) -> None:
        try:
            self._queue.put_nowait((notifier, notice))
        except queue.Full:
            self.outcomes.labels(notifier.name, notice.event.value, "dropped").inc()
            log.warning("notify %s: queue full, %s dropped", notifier.name, notice.title)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, tuple)
                self._post(item[0], item[1])
            finally:
                self._queue.task_done()

    def _post(self, notifier: NotifierConfig, notice: Notice) -> None:
        result = "failed"
        try:
            body = json_body(render(notice, notifier))
            request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configuration
                notifier.resolve_url(), data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=notifier.timeout_seconds) as response:  # noqa: S310
                result = "sent" if 200 <= response.status < 300 else "failed"
                _reply(response, notifier)  # read whole, so a reply cut off is not mistaken for one
        except urllib.error.HTTPError as exc:
            try:
                why = _reply(exc, notifier)
            except BodyError as cut:
                why = str(cut)
            finally:
                exc.close()  # it holds the response's socket
            log.warning(
                "notify %s: %s answered %s for %s: %s",
                notifier.name,
                notifier.type,
                exc.code,
                notice.title,
                why or "(no reply text)",
            )
        except BodyError as exc:  # delivered (2xx), but the reply did not arrive whole: say so
            log.warning("notify %s: %s for %s", notifier.name, exc, notice.title)
        except Exception as exc:
            log.warning("notify %s: could not post %s: %s", notifier.name, notice.title, exc)
        self.outcomes.labels(notifier.name, notice.event.value, result).inc()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued has been posted (tests, shutdown); False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Post what is queued (up to `timeout`), then stop the worker."""
        self.flush(timeout)
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            return
        self._worker.join(timeout)
