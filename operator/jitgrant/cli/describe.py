"""What an approver decides on: `jitgrant get NAME` as a description, not a one-line row.

Who asks and why, under which policy, for what (the ClusterRole's verbs and resources, read from the
cluster, or the inline rules), for how long, the approvals so far and how many are missing. A
dangerous permission (the same list the policy engine refuses through wildcards) is named, in red
only when writing to a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, cast

from jitgrant.approvals.receipts import parse_recorded
from jitgrant.models.text import for_terminal, terminal_tree
from jitgrant.models.vocabulary import APPROVALS_ANNOTATION, REMOVAL_OVERDUE_CONDITION

if TYPE_CHECKING:
    from jitgrant.policy.dangerous import Position

RED, BOLD, RESET = "\x1b[31m", "\x1b[1m", "\x1b[0m"


@dataclass(frozen=True)
class Paint:
    """ANSI colour on a terminal, plain text in a pipe, a file or a log."""

    enabled: bool

    @classmethod
    def for_stream(cls, stream: TextIO) -> Paint:
        return cls(enabled=bool(getattr(stream, "isatty", lambda: False)()))

    def red(self, text: str) -> str:
        return f"{RED}{BOLD}{text}{RESET}" if self.enabled else text


def rule_dangers(rule: Mapping[str, Any]) -> dict[tuple[Position, str], str]:
    """Dangerous entries of a rule and why, judged atom by atom by the policy engine's own list."""
    # Imported here: `list` and `get` print rows, which need none of the policy engine.
    from jitgrant.policy.dangerous import dangerous_parts
    from jitgrant.policy.rbac import Permission

    found: dict[tuple[Position, str], str] = {}
    for group in rule.get("apiGroups") or [""]:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                for part in dangerous_parts(Permission(api_group=group, resource=resource, verb=verb)):
                    found.setdefault((part.position, part.entry), part.why)
    return found


def describe_rule(rule: Mapping[str, Any], paint: Paint) -> tuple[str, list[str]]:
    """`verbs on resources (groups)[ named ...]` with dangerous entries painted, and why each is."""
    from jitgrant.policy.dangerous import Position

    dangers = rule_dangers(rule)
    warnings: list[str] = []

    def mark(entries: Sequence[str], position: Position, empty: str = "") -> str:
        shown = []
        for entry in entries:
            label = entry or empty
            why = dangers.get((position, entry))
            if why:
                warnings.append(f"{position.value} {label!r}: {why}")
                shown.append(paint.red(label))
            else:
                shown.append(label)
        return ",".join(shown)

    groups = mark(rule.get("apiGroups") or [], Position.API_GROUP, empty="core")
    resources = mark(rule.get("resources") or [], Position.RESOURCE)
    verbs = mark(rule.get("verbs") or [], Position.VERB)
    names = f" named {','.join(rule['resourceNames'])}" if rule.get("resourceNames") else ""
    return f"{verbs} on {resources} ({groups}){names}", warnings


def scope_of(spec: Mapping[str, Any]) -> str:
    if spec.get("clusterRole"):
        return f"clusterrole/{spec['clusterRole']} in {spec.get('namespace')}"
    parts = []
    for rule in spec.get("rules") or []:
        names = f"/{','.join(rule['resourceNames'])}" if rule.get("resourceNames") else ""
        parts.append(f"{','.join(rule.get('verbs', []))} {','.join(rule.get('resources', []))}{names}")
    return f"{'; '.join(parts)} in {spec.get('namespace')}"


def removal_overdue(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The request's RemovalOverdue condition while it is True: its grant outlived its end."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == REMOVAL_OVERDUE_CONDITION and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None


def _when(text: str | None) -> str:
    return text or "-"


def describe_request(
    obj: Mapping[str, Any],
    *,
    cluster_role_rules: Sequence[Mapping[str, Any]] | None,
    cluster_role_error: str | None,
    policy_spec: Mapping[str, Any] | None,
    paint: Paint,
) -> str:
    # Everything shown may hold text someone else wrote (the justification, reasons, an OIDC subject,
    # resource names): every string is shown with its control characters escaped before any of it
    # is laid out or painted, so ESC, \r or a bidi override cannot rewrite what the approver reads.
    decisions = _decisions(obj)  # from the stored JSON, each field escaped as it is shown
    obj = cast(Mapping[str, Any], terminal_tree(dict(obj)))
    if cluster_role_rules is not None:
        cluster_role_rules = cast(list[Mapping[str, Any]], terminal_tree(list(cluster_role_rules)))
    if policy_spec is not None:
        policy_spec = cast(Mapping[str, Any], terminal_tree(dict(policy_spec)))
    cluster_role_error = None if cluster_role_error is None else for_terminal(cluster_role_error)
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    requester = spec.get("requester") or {}
    lines = [
        f"Name:           {meta.get('namespace')}/{meta.get('name')}",
        f"Phase:          {status.get('phase') or 'New (the operator has not decided yet)'}",
        f"Requester:      {requester.get('username', '-')}"
        + (f" (groups: {', '.join(requester['groups'])})" if requester.get("groups") else ""),
        f"Justification:  {spec.get('justification') or '-'}",
        f"Policy:         {spec.get('policy')}",
        f"Namespace:      {spec.get('namespace')} (where the grant lands)",
        f"Duration:       {spec.get('duration') or _default_duration(policy_spec)}",
        f"Scope:          {scope_of(spec)}",
    ]
    if spec.get("extends"):
        lines.append(f"Extends:        {spec['extends']} by {spec.get('duration')} (the same scope)")
    warnings: list[str] = []
    if spec.get("clusterRole"):
        lines.append(f"ClusterRole:    {spec['clusterRole']}")
        if cluster_role_rules is not None:
            for rule in cluster_role_rules:
                text, found = describe_rule(rule, paint)
                lines.append(f"  - {text}")
                warnings.extend(found)
        else:
            lines.append(f"  (its rules are not shown: {cluster_role_error})")
    else:
        lines.append("Rules:")
        for rule in spec.get("rules") or []:
            text, found = describe_rule(rule, paint)
            lines.append(f"  - {text}")
            warnings.extend(found)
    if warnings:
        lines.append(paint.red("Dangerous:"))
        lines.extend(f"  ! {paint.red(warning)}" for warning in dict.fromkeys(warnings))
    lines.append(_approvals_line(obj, policy_spec))
    lines.extend(decisions)
    lines.append(f"Requested:      {_when(status.get('requestedAt') or meta.get('creationTimestamp'))}")
    if status.get("activatedAt"):
        lines.append(f"Active since:   {status['activatedAt']}")
    if status.get("expiresAt"):
        lines.append(f"Expires:        {status['expiresAt']}")
    lines.extend(_extension_lines(status))
    overdue = removal_overdue(status)
    if overdue is not None:
        lines.append(
            paint.red(
                f"Removal:        OVERDUE since {overdue.get('lastTransitionTime')} ({overdue.get('reason')})"
            )
        )
    if status.get("message"):
        lines.append(f"\n{status.get('reason') or status.get('phase') or 'Status'}: {status['message']}")
    return "\n".join(lines) + "\n"


def _extension_lines(status: Mapping[str, Any]) -> list[str]:
    """The extensions applied to a grant, each with who approved it and the end it moved to."""
    entries = status.get("extensions") or []
    if not entries:
        return []
    lines = [f"Extended:       {len(entries)} time(s)"]
    for entry in entries:
        who = ", ".join(entry.get("approvedBy") or []) or "auto-approved"
        lines.append(
            f"  + {entry.get('by')} through {entry.get('request')} at {entry.get('at')} ({who}); "
            f"then ending {entry.get('expiresAt')}"
        )
    return lines


def _default_duration(policy_spec: Mapping[str, Any] | None) -> str:
    if policy_spec is None:
        return "the policy's default"
    value = policy_spec.get("defaultDuration") or policy_spec.get("maxDuration") or "15m"
    return f"{value} (the policy's default)"


def approvals_needed(policy_spec: Mapping[str, Any] | None) -> int | None:
    if policy_spec is None:
        return None
    approval = policy_spec.get("approval") or {}
    if not approval.get("required"):
        return 0
    return int(approval.get("minApprovals", 1))


def _approvals_line(obj: Mapping[str, Any], policy_spec: Mapping[str, Any] | None) -> str:
    counted = len({a.get("approver") for a in (obj.get("status") or {}).get("approvals") or []})
    needed = approvals_needed(policy_spec)
    if needed is None:
        return (
            f"Approvals:      {counted} counted (the policy is not readable: how many are needed is unknown)"
        )
    if needed == 0:
        return "Approvals:      not required by the policy"
    who = (policy_spec or {}).get("approval", {}).get("approvers") or {}
    by = "; ".join(f"{k} {', '.join(v)}" for k, v in who.items() if v)
    missing = max(needed - counted, 0)
    return f"Approvals:      {counted} of {needed}, {missing} missing (approvers: {by or 'none'})"


def _decisions(obj: Mapping[str, Any]) -> list[str]:
    status = obj.get("status") or {}
    counted = {approval.get("receipt") for approval in status.get("approvals") or []}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    lines = []
    for entry in parse_recorded(annotations.get(APPROVALS_ANNOTATION)):
        verb = "approved" if entry.decision == "approve" else "denied"
        note = " (counted)" if entry.receipt in counted else ""
        reason = f": {for_terminal(entry.reason)}" if entry.reason else ""
        lines.append(f"  {verb} by {for_terminal(entry.approver)} at {entry.at.isoformat()}{note}{reason}")
    return lines


def stdout_paint() -> Paint:
    return Paint.for_stream(sys.stdout)
