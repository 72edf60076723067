"""The console's HTML, server-rendered. Every value from the API (names, justifications, reasons,
messages, usernames) goes through `t()` (models.text.for_html): escaped, with control codes shown
as escapes; the markup around it is ours. No inline script or style: the one script and the one
stylesheet are static files, which is what lets the Content-Security-Policy forbid everything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from jitgrant.console.views import (
    LIVE_PHASES,
    Decision,
    approvals_needed,
    approvers_named,
    recorded,
    requester_of,
    timeline,
)
from jitgrant.models.text import CELL_LIMIT, for_html


def t(value: object, *, limit: int | None = None) -> str:
    """Text from the API, inert in HTML."""
    return for_html("" if value is None else str(value), limit=limit)


def href(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def page(
    title: str, body: str, *, username: str, csrf: str, current: str = "", notice: str = "", error: str = ""
) -> str:
    marked = ' aria-current="page"'
    nav = "".join(
        f'<a href="{path}"{marked if path == current else ""}>{label}</a>'
        for path, label in (("/", "Waiting for me"), ("/mine", "My requests"), ("/policies", "Policies"))
    )
    flash = ""
    if notice:
        flash += f'<p class="notice" role="status">{t(notice)}</p>'
    if error:
        flash += f'<div class="error" role="alert"><h2>Refused</h2><p id="refusal">{t(error)}</p></div>'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{t(title)} · jitgrant console</title>"
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body><header><p class="brand">jitgrant console</p><nav aria-label="Main">{nav}</nav>'
        f'<div class="who">Signed in as <strong id="me">{t(username)}</strong>'
        f'<form method="post" action="/logout">{csrf_field(csrf)}<button type="submit">Sign out</button>'
        f"</form></div></header>"
        f'<main id="main"><h1>{t(title)}</h1>{flash}<div id="live">{body}</div></main></body></html>'
    )


def bare(title: str, message: str, *, link: tuple[str, str] | None = None) -> str:
    """A page for someone not signed in (or a broken link): no navigation, no form."""
    more = f'<p><a href="{t(link[0])}" id="sign-in">{t(link[1])}</a></p>' if link else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{t(title)} · jitgrant console</title><link rel="stylesheet" href="/static/console.css">'
        f'</head><body><main id="main"><h1>{t(title)}</h1><p>{t(message)}</p>{more}</main></body></html>'
    )


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{t(token)}">'


def _phase(status: Mapping[str, Any]) -> str:
    phase = status.get("phase") or "New"
    return f'<span class="phase phase-{t(phase).lower()}">{t(phase)}</span>'


def request_table(rows: Sequence[tuple[Mapping[str, Any], str]], *, empty: str) -> str:
    """(request, note) rows: name, policy, requester, scope, phase, the note (approvals needed)."""
    if not rows:
        return f'<p class="empty">{t(empty)}</p>'
    body = []
    for obj, note in rows:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        stamp = requester_of(obj)
        body.append(
            "<tr>"
            f'<td><a href="{href("requests", namespace, name)}">{t(namespace)}/{t(name)}</a></td>'
            f"<td>{t(spec.get('policy'))}</td>"
            f"<td>{t(stamp.username if stamp else '-', limit=CELL_LIMIT)}</td>"
            f"<td>{t(scope_text(spec), limit=CELL_LIMIT)}</td>"
            f"<td>{_phase(status)}</td><td>{t(note)}</td></tr>"
        )
    return (
        '<div class="scroll"><table><thead><tr><th scope="col">Request</th><th scope="col">Policy</th>'
        '<th scope="col">Requester</th><th scope="col">Scope</th><th scope="col">Phase</th>'
        f'<th scope="col">Approvals</th></tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def scope_text(spec: Mapping[str, Any]) -> str:
    if spec.get("clusterRole"):
        return f"clusterrole/{spec['clusterRole']} in {spec.get('namespace')}"
    rules = [
        f"{','.join(rule.get('verbs') or [])} {','.join(rule.get('resources') or [])}"
        for rule in spec.get("rules") or []
    ]
    return f"{'; '.join(rules)} in {spec.get('namespace')}"


def rules_table(rules: Sequence[Mapping[str, Any]]) -> str:
    if not rules:
        return '<p class="empty">No rules could be read.</p>'
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{t(', '.join(rule.get(key) or []) or ('' if key == 'resourceNames' else '*'))}</td>"
            for key in ("apiGroups", "resources", "resourceNames", "verbs")
        )
        + "</tr>"
        for rule in rules
    )
    return (
        '<div class="scroll"><table><thead><tr><th scope="col">API groups</th><th scope="col">Resources</th>'
        '<th scope="col">Names</th><th scope="col">Verbs</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _dl(items: Sequence[tuple[str, str]]) -> str:
    """(label, html) pairs; the html is already escaped."""
    return "<dl>" + "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in items) + "</dl>"


def request_page(
    obj: Mapping[str, Any],
    *,
    policy: Mapping[str, Any] | None,
    rules: Sequence[Mapping[str, Any]],
    decision: Decision,
    mine: bool,
    csrf: str,
    activity: str,
) -> str:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    stamp = requester_of(obj)
    if stamp is None:
        proof = "not stamped (the admission webhook did not see this request)"
    elif stamp.proven_by.value == "oidc":
        proof = f"a verified OIDC ID token from {stamp.issuer} (subject {stamp.subject})"
    else:
        proof = "the Kubernetes API server authenticated the creator"
    needed = approvals_needed(policy)
    approvals = (
        f"{decision.counted} of {needed}" if needed is not None else f"{decision.counted} (policy unreadable)"
    )
    summary = _dl(
        [
            ("Phase", f"{_phase(status)} {t(status.get('reason') or '')}"),
            ("Message", t(status.get("message") or "-")),
            ("Requester", f'<span id="requester">{t(stamp.username if stamp else "-")}</span>'),
            ("Requester's groups", t(", ".join(stamp.groups) if stamp else "-")),
            ("Identity proven by", t(proof)),
            ("Policy", f'<a href="/policies#{t(spec.get("policy"))}">{t(spec.get("policy"))}</a>'),
            ("Namespace", t(spec.get("namespace"))),
            ("Duration", t(spec.get("duration") or "policy default")),
            ("Approvals", t(approvals)),
            ("Who may approve", t(approvers_named(policy))),
        ]
    )
    justification = (
        f'<h2>Justification</h2><p class="agent-text" id="justification">{t(spec.get("justification"))}</p>'
    )
    scope = (
        f"<h2>Scope</h2><p>{t(scope_text(spec))}</p>"
        + (
            f"<p>ClusterRole <code>{t(spec['clusterRole'])}</code> grants:</p>"
            if spec.get("clusterRole")
            else ""
        )
        + rules_table(rules)
    )
    decisions = recorded(obj)
    if decisions:
        items = "".join(
            f"<li><strong>{t(entry.decision)}</strong> by {t(entry.approver)} "
            f"({t(', '.join(entry.groups) or 'no groups')}) at {t(entry.at.isoformat())}: "
            f'<span class="agent-text">{t(entry.reason or "no reason given")}</span>'
            f'<br><span class="receipt">receipt <code>{t(entry.receipt)}</code></span></li>'
            for entry in decisions
        )
        decided = f'<h2>Approvals</h2><ul class="approvals">{items}</ul>'
    else:
        decided = '<h2>Approvals</h2><p class="empty">No decisions yet.</p>'
    events = "".join(f"<li><time>{t(at)}</time> {t(what)}</li>" for at, what in timeline(obj))
    history = f'<h2>Timeline</h2><ol class="timeline">{events}</ol>'
    actions = _actions(namespace, name, status, decision=decision, mine=mine, csrf=csrf)
    used = f"<h2>Activity</h2>{activity}"
    # What the approver reads before deciding comes first: who, why, what; then the decision.
    return summary + justification + scope + decided + actions + history + used


def _actions(
    namespace: str, name: str, status: Mapping[str, Any], *, decision: Decision, mine: bool, csrf: str
) -> str:
    forms = []
    base = href("requests", namespace, name)
    if decision.may_decide:
        forms.append(
            f'<form method="post" action="{base}/approve" class="decide">{csrf_field(csrf)}'
            '<label for="approve-reason">Reason for approving (optional)</label>'
            '<input id="approve-reason" name="reason" maxlength="1024">'
            '<button type="submit" id="approve">Approve</button></form>'
            f'<form method="post" action="{base}/deny" class="decide">{csrf_field(csrf)}'
            '<label for="deny-reason">Reason for denying (required)</label>'
            '<input id="deny-reason" name="reason" maxlength="1024" required>'
            '<button type="submit" id="deny" class="danger">Deny</button></form>'
        )
    elif status.get("phase") == "Pending":
        forms.append(f'<p class="why-not" id="why-not">You cannot decide: {t(decision.why_not)}.</p>')
    if status.get("phase") in LIVE_PHASES and not mine:
        forms.append(
            f'<form method="post" action="{base}/revoke" class="decide">{csrf_field(csrf)}'
            '<label for="revoke-reason">Reason for revoking (required; goes into the audit trail)</label>'
            '<input id="revoke-reason" name="reason" maxlength="1024" required>'
            '<button type="submit" id="revoke" class="danger">Revoke</button></form>'
        )
    if not forms:
        return ""
    return '<section class="actions" aria-label="Decide"><h2>Decide</h2>' + "".join(forms) + "</section>"


def policies_page(policies: Sequence[Mapping[str, Any]]) -> str:
    if not policies:
        return '<p class="empty">No GrantPolicies you can read.</p>'
    sections = []
    for policy in sorted(policies, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        name = str((policy.get("metadata") or {}).get("name") or "")
        spec = policy.get("spec") or {}
        requesters = spec.get("requesters") or {}
        who = [f"{k}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(requesters.items()) if v]
        grants = [
            g.get("clusterRole") or f"rules: {json.dumps(g.get('rules'), sort_keys=True)}"
            for g in spec.get("grants") or []
        ]
        needed = approvals_needed(policy)
        sections.append(
            f'<section class="policy" id="{t(name)}"><h2>{t(name)}</h2>'
            + _dl(
                [
                    ("Requesters", "<br>".join(t(line) for line in who) or "none"),
                    ("Namespaces", t(", ".join(spec.get("namespaces") or []) or "-")),
                    ("Grants", "<br>".join(t(line) for line in grants) or "-"),
                    ("Longest grant", t(spec.get("maxDuration") or "-")),
                    ("Approvals needed", t("none" if needed == 0 else needed)),
                    ("Who may approve", t(approvers_named(policy))),
                ]
            )
            + "</section>"
        )
    return "".join(sections)


def activity_list(calls: Sequence[Mapping[str, str]]) -> str:
    if not calls:
        return '<p class="empty">No calls recorded.</p>'
    items = "".join(
        f"<li><time>{t(call['at'])}</time> {t(call['verb'])} {t(call['what'])} "
        f"<span class='decision'>{t(call['decision'])}</span></li>"
        for call in calls
    )
    return f'<ol class="activity">{items}</ol>'
