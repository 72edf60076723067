"""Text that agents write (justifications, reasons), its limits, and how it is shown. Pure.

An agent writes `spec.justification` and the release reason; approvers write approve, deny and revoke
reasons; an OIDC issuer names the subject. All of it reaches people: in Slack, in Teams, through the
JSON webhook, in terminals (`jitgrant get/list/describe`, `audit query`, `activity`) and in the
operator's logs. Each destination has one function here that makes such text inert there: it is
shown, never acted on (no control codes, mentions, links, markup, or forged lines). Text the operator
composes around it (labels, its own sentences) is ours and is not passed through these.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from typing import Final

# Limits, enforced where the text enters: the CRD schema for spec.justification, the admission
# webhooks for the annotations (approve, deny, revoke, release). An approver reads all of it.
MAX_JUSTIFICATION_LENGTH: Final = 1024
MAX_REASON_LENGTH: Final = 1024

# How much of one agent-written field a notification or a table cell shows (Slack refuses a section
# over 3000 characters outright, which would drop the whole notice).
NOTICE_FIELD_LIMIT: Final = 400
CELL_LIMIT: Final = 80

_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
# Characters that act instead of showing: C0 and C1 controls and DEL (Cc), format characters such as
# bidi overrides and isolates, zero-width spaces and joiners, the BOM (Cf), line and paragraph
# separators (Zl, Zp), surrogates, private-use and unassigned code points.
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def is_hidden(char: str) -> bool:
    """Whether a character would act on the display (move, erase, reorder, hide) rather than show."""
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def visible(text: str) -> str:
    """Every hidden character shown as an escape (`\\n`, `\\r`, `\\e`, `\\x9b`, `\\u202e`), the rest
    unchanged: what a terminal, a log line or a chat message shows is what was written, on one line."""
    if not any(is_hidden(char) for char in text):
        return text
    out = []
    for char in text:
        if char in _NAMED:
            out.append(_NAMED[char])
        elif is_hidden(char):
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out)


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters; a cut says how much was left out."""
    if len(text) <= limit:
        return text
    keep = limit
    for _ in range(2):  # the note's length depends on the count it gives
        note = f"… ({len(text) - keep} more characters)"
        keep = max(limit - len(note), 0)
    return text[:keep] + f"… ({len(text) - keep} more characters)"


# ---- terminals -------------------------------------------------------------------------------------


def for_terminal(text: str, *, limit: int | None = None) -> str:
    """Agent text for a terminal: control codes (ESC sequences, `\\r`, backspace, C1 CSI) and bidi or
    zero-width characters shown as escapes, so they cannot erase, move or reorder what the reader sees."""
    shown = visible(text)
    return shorten(shown, limit) if limit is not None else shown


def terminal_tree(value: object) -> object:
    """A JSON-like value with every string in it (keys too) passed through `for_terminal`."""
    if isinstance(value, str):
        return for_terminal(value)
    if isinstance(value, dict):
        return {for_terminal(str(key)): terminal_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [terminal_tree(item) for item in value]
    return value


# ---- logs ------------------------------------------------------------------------------------------


def log_field(text: str) -> str:
    """Agent text as one quoted field of a text log line (`reason="..."`): quotes and backslashes
    escaped, hidden characters shown as escapes, so a newline cannot start a forged line and a quote
    cannot end the field early."""
    return '"' + visible(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


# ---- Slack -----------------------------------------------------------------------------------------

_SCHEME: Final = re.compile(r"://")
_MENTION: Final = re.compile(r"@(?=\w)")
_AT: Final = "\uff20"  # FULLWIDTH COMMERCIAL AT: reads as @, is never a mention


def defang(text: str) -> str:
    """`https://x` as `https[:]//x`: still readable, no longer a link any client makes clickable."""
    return _SCHEME.sub("[:]//", text)


_SLACK_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def for_slack(text: str, *, limit: int = NOTICE_FIELD_LIMIT) -> str:
    """Agent text for Slack mrkdwn: an inline code span (no bold, italics, strike or auto-linked
    domains); `&`, `<`, `>` escaped (so no `<!channel>`, `<!here>`, `<@U…>` or `<url|label>`); `@`
    before a word shown as a fullwidth at sign (no `@here`/`@channel` even with link_names); URLs
    defanged; on one line; at most `limit` characters as sent (entities counted)."""
    if not text:
        return "-"
    shown = _MENTION.sub(_AT, defang(visible(text))).replace("`", "'")
    pieces = [_SLACK_ENTITIES.get(char, char) for char in shown]
    if sum(len(piece) for piece in pieces) > limit:
        budget, used, kept = limit - 32, 0, 0
        while kept < len(pieces) and used + len(pieces[kept]) <= budget:
            used += len(pieces[kept])
            kept += 1
        pieces = [*pieces[:kept], f"… ({len(pieces) - kept} more characters)"]
    return "`" + "".join(pieces) + "`"


# ---- Microsoft Teams -------------------------------------------------------------------------------


def for_teams(text: str, *, limit: int = NOTICE_FIELD_LIMIT) -> str:
    """Agent text for an Adaptive Card TextRun, which renders no markdown: hidden characters shown as
    escapes, on one line, URLs defanged, `@` before a word shown as a fullwidth at sign (a Teams
    mention needs an `<at>` tag and an entity the card never has; a reader should not see one either)."""
    if not text:
        return "-"
    return shorten(_MENTION.sub(_AT, defang(visible(text))), limit)


# ---- the JSON webhook ------------------------------------------------------------------------------


def json_body(payload: object) -> bytes:
    """The JSON webhook's body: agent text verbatim (the receiver decides how to show it) but
    JSON-encoded with every non-ASCII and control character as a `\\u` escape, so the body itself is
    plain ASCII on one line."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# ---- HTML (the approvers' console) -----------------------------------------------------------------


def for_html(text: str, *, limit: int | None = None) -> str:
    """Agent text for an HTML page, as element text or a quoted attribute value: `&`, `<`, `>`, `"`
    and `'` as entities (no markup, no script, no attribute escape), hidden characters shown as
    escapes as in a terminal (an ANSI colour code reads `\\e[31m`; a bidi override cannot reorder the
    page), at most `limit` characters before escaping."""
    shown = visible(text)
    if limit is not None:
        shown = shorten(shown, limit)
    return html.escape(shown, quote=True)
