"""Which notifiers post which events for a policy's requests (issue 31 §6, `spec.notifications`).

Without `spec.notifications` every notifier the operator is configured with posts the events it
lists (the chart's notifications.notifiers[].events). With it, the policy chooses: `notifiers` names
which of the operator's notifiers post (`[]`: none, a quiet policy), `events` replaces each chosen
notifier's own list. So a break-glass policy can page on every event while auto-approved reads stay
silent. A name the operator has no notifier for is refused at apply, never silently dropped.

Pure: the notifier passes the names and events it is configured with.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from jitgrant.models.policy import PolicyNotifications
from jitgrant.models.vocabulary import NotifyEvent


def posting_notifiers(
    event: NotifyEvent,
    configured: Sequence[tuple[str, Collection[NotifyEvent]]],
    override: PolicyNotifications | None,
) -> tuple[str, ...]:
    """The names of the configured notifiers that post `event` for a request under this policy."""
    chosen: list[str] = []
    for name, events in configured:
        if override is not None and override.notifiers is not None and name not in override.notifiers:
            continue
        wanted = override.events if override is not None and override.events is not None else events
        if event in wanted:
            chosen.append(name)
    return tuple(chosen)


def unknown_notifiers(override: PolicyNotifications | None, configured: Collection[str]) -> str | None:
    """Why a policy's spec.notifications names a notifier the operator does not have, or None."""
    if override is None or not override.notifiers:
        return None
    unknown = [name for name in override.notifiers if name not in configured]
    if not unknown:
        return None
    have = ", ".join(sorted(configured)) or "none (the operator runs without --notify-config)"
    return (
        f"spec.notifications.notifiers names {', '.join(repr(n) for n in unknown)}, which the operator has "
        f"no notifier for (configured: {have}); name one of those, or [] for none"
    )
