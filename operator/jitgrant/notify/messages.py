"""What a notification says, and its three wire formats. Pure: no I/O.

Every message carries what an approver decides on (scope, justification, requester, expiry) and,
while the request is pending, the exact commands to approve or deny it. Every fact's value may hold
text an agent or an issuer wrote (the justification, a reason inside the status message, an OIDC
subject, resource names): each format shows it through its own function in `jitgrant.models.text`,
so it is shown and never acted on (identity-and-approvals.md, "Text others wrote").
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitgrant.models import AccessRequest, Phase
from jitgrant.models.text import for_slack, for_teams
from jitgrant.notify.config import NotifierConfig, NotifyEvent

_EVENT_OF_PHASE = {
    Phase.PENDING: NotifyEvent.PENDING,
    Phase.APPROVED: NotifyEvent.DECIDED,
    Phase.DENIED: NotifyEvent.DECIDED,
    Phase.TIMED_OUT: NotifyEvent.DECIDED,
    Phase.ACTIVE: NotifyEvent.ACTIVE,
    Phase.EXPIRED: NotifyEvent.EXPIRED,
    Phase.REVOKED: NotifyEvent.REVOKED,
    Phase.FAILED: NotifyEvent.FAILED,
}


@dataclass(frozen=True)
class Notice:
    event: NotifyEvent
    namespace: str
    name: str
    phase: str
    reason: str
    message: str
    requester: str
    policy: str
    scope: str
    justification: str
    duration: str
    expires_at: datetime | None

    @property
    def title(self) -> str:
        what = {
            NotifyEvent.PENDING: "needs approval",
            NotifyEvent.DECIDED: f"{self.phase.lower()}",
            NotifyEvent.ACTIVE: "is active",
            NotifyEvent.EXPIRED: "expired",
            NotifyEvent.REVOKED: "was revoked",
            NotifyEvent.FAILED: "failed",
        }[self.event]
        return f"AccessRequest {self.namespace}/{self.name} {what}"

    @property
    def expiry(self) -> str:
        if self.expires_at is not None:
            return self.expires_at.isoformat().replace("+00:00", "Z")
        return f"{self.duration} after activation" if self.duration else "the policy's default duration"

    def commands(self, cli: str = "jitgrant") -> dict[str, str]:
        """The exact commands to decide (pending only); the approver fills in a reason."""
        if self.event is not NotifyEvent.PENDING:
            return {}
        target = f"{shlex.quote(self.name)} -n {shlex.quote(self.namespace)}"
        return {
            "get": f"{cli} get {target}",
            "approve": f'{cli} approve {target} --reason "..."',
            "deny": f'{cli} deny {target} --reason "..."',
        }


def scope_text(request: AccessRequest) -> str:
    spec = request.spec
    if spec.cluster_role:
        return f"clusterrole/{spec.cluster_role} in {spec.namespace}"
    parts = []
    for rule in spec.rules or ():
        names = f"/{','.join(rule.resource_names)}" if rule.resource_names else ""
        parts.append(f"{','.join(rule.verbs)} {','.join(rule.resources)}{names}")
    return f"{'; '.join(parts)} in {spec.namespace}"


def notice_for(
    request: AccessRequest, *, phase: Phase, reason: str, message: str, expires_at: datetime | None = None
) -> Notice | None:
    """The notice for a transition into `phase`, or None when no event matches."""
    event = _EVENT_OF_PHASE.get(phase)
    if event is None:
        return None
    requester = request.spec.requester.username if request.spec.requester else "(unverified)"
    return Notice(
        event=event,
        namespace=request.metadata.namespace or "",
        name=request.metadata.name,
        phase=phase.value,
        reason=reason,
        message=message,
        requester=requester,
        policy=request.spec.policy,
        scope=scope_text(request),
        justification=request.spec.justification,
        duration=request.spec.duration or "",
        expires_at=expires_at or request.status.expires_at,
    )


def _facts(notice: Notice) -> list[tuple[str, str]]:
    return [
        ("Requester", notice.requester),
        ("Scope", notice.scope),
        ("Justification", notice.justification),
        ("Policy", notice.policy),
        ("Expires", notice.expiry),
        ("Status", f"{notice.phase} ({notice.reason}): {notice.message}"),
    ]


def render(notice: Notice, config: NotifierConfig) -> dict[str, Any]:
    """The JSON body for the notifier's type. The generic webhook gets every value verbatim: its
    receiver decides how to show it; `models.text.json_body` encodes it as plain ASCII JSON."""
    commands = notice.commands(config.command)
    if config.type == "slack":
        return _slack(notice, commands)
    if config.type == "teams":
        return _teams(notice, commands)
    return {
        "event": notice.event.value,
        "title": notice.title,
        "request": {"namespace": notice.namespace, "name": notice.name},
        "phase": notice.phase,
        "reason": notice.reason,
        "message": notice.message,
        "requester": notice.requester,
        "policy": notice.policy,
        "scope": notice.scope,
        "justification": notice.justification,
        "expires": notice.expiry,
        "commands": commands,
    }


def _slack_escape(text: str) -> str:
    """Our own text in mrkdwn (titles, commands): only the three characters Slack reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(notice: Notice, commands: dict[str, str]) -> dict[str, Any]:
    """Slack incoming-webhook format: `text` (the fallback every client shows) and blocks. Each
    fact's value is `for_slack`: an inline code span with no mentions, links or markup."""
    lines = [f"*{label}:* {for_slack(value)}" for label, value in _facts(notice)]
    text = f"{_slack_escape(notice.title)}\n" + "\n".join(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if commands:
        shown = _slack_escape("\n".join(commands[key] for key in ("approve", "deny")))
        text += f"\nApprove or deny:\n{shown}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{shown}```"}})
    # No previews of whatever URL-shaped text a message holds.
    return {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


def _teams_fact(label: str, value: str) -> dict[str, Any]:
    """One fact as a RichTextBlock: TextRuns render no markdown, so agent text cannot add links,
    emphasis or lines; `for_teams` also shows control characters and defangs URLs."""
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": f"{label}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": for_teams(value)},
        ],
    }


def _teams(notice: Notice, commands: dict[str, str]) -> dict[str, Any]:
    """Teams incoming webhook (and Workflows): a message with one Adaptive Card attachment."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": notice.title, "wrap": True},
        *(_teams_fact(label, value) for label, value in _facts(notice)),
    ]
    for key in ("approve", "deny"):
        if key in commands:
            body.append({"type": "TextBlock", "text": commands[key], "fontType": "Monospace", "wrap": True})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }
