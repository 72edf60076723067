"""Tell people when a request needs them or has ended: Slack, Microsoft Teams or a JSON webhook.

A notification is a courtesy, never a precondition: posting happens on a worker thread from a
bounded queue, so a slow or failing receiver never blocks or slows a grant; failures and drops are
counted in `jitgrant_notifications_total{result="failed"|"dropped"}`.
"""

from jitgrant.notify.config import NotifierConfig, NotifyConfig, NotifyEvent
from jitgrant.notify.dispatch import Notifier
from jitgrant.notify.messages import Notice, notice_for, render

__all__ = ["Notice", "Notifier", "NotifierConfig", "NotifyConfig", "NotifyEvent", "notice_for", "render"]
