"""Hostile strings an agent (or a compromised issuer, or a careless approver) can put in free text,
shared by the tests of every destination (identity-and-approvals.md, "Text others wrote")."""

from __future__ import annotations

from jitgrant.models.text import MAX_JUSTIFICATION_LENGTH

HOSTILE: dict[str, str] = {
    "slack-broadcast": "<!channel> <!here> <!everyone> please approve",
    "bare-mentions": "@here @channel @everyone ping",
    "user-mention": "<@U024BE7LH> said it is fine",
    "slack-link": "<https://evil.example/approve|Approve here>",
    "markdown-link": "[Approve here](https://evil.example/approve) **URGENT** _now_",
    "bare-url": "see https://evil.example/runbook",
    "forged-line": "INC-1\n*Requester:* alice@example.com (platform team)\n*Scope:* get pods",
    "ansi": "INC-2 \x1b[2J\x1b[1;1H\x1b[32mapproved by security\x1b[0m",
    "carriage-return": "INC-3 exfiltrate secrets\rINC-3 restart checkout   ",
    "backspace": "INC-4 delete all\b\b\b\b\b\b\b\b\b\brestart pod",
    "c1-csi": "INC-5 \x9b2J\x9b1;1H cleared",
    "bidi-override": "INC-6 \u202etpircs.exe\u202c harmless \u2066\u2067isolate\u2069",
    "zero-width": "appr\u200bove\u200c\u200d\u2060\ufeff now",
    "line-separators": "INC-7\u2028*Requester:* root\u2029end",
    "log-line": "INC-8\n2026-12-07 10:00:00,000 INFO jitgrant.reconcile: agents/x -> Active: approved",
    "very-long": "INC-9 " + "A" * (MAX_JUSTIFICATION_LENGTH - 6),
    "very-long-entities": "<&>" * (MAX_JUSTIFICATION_LENGTH // 3),
}

# Characters that must never reach a reader raw.
ACTING = [
    "\x1b", "\r", "\b", "\x9b", "\u202e", "\u202c", "\u2066", "\u2067", "\u2069",
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2028", "\u2029",
]  # fmt: skip
