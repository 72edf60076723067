"""Idle end (issue 31 §3): a grant whose identity made no API call for the policy's `idleTimeout`
ends with reason `Idle`.

An agent that finished early forgets to release; its grant would stay for its whole window. The
operator reads the grant's calls from the target cluster's audit log (the activity source the trail
already reads per grant: a file the API server or the activity receiver writes, or CloudWatch for
EKS), and holds the last one against the timeout. Nothing is kept in memory: the deadline is
`max(activatedAt, last call) + idleTimeout`, recomputed from the log on every look, so an idle timer
runs across operator restarts and failovers unchanged.

Pure: the reconciler reads the log and passes the last call's time.
"""

from __future__ import annotations

from datetime import datetime

from jitgrant.lifecycle.transitions import Action, Step
from jitgrant.models import AccessRequest, GrantPolicySpec, Phase, format_duration
from jitgrant.models.vocabulary import Reason, format_time


def idle_step(
    *, request: AccessRequest, policy: GrantPolicySpec | None, last_call: datetime | None, now: datetime
) -> Step | None:
    """REVOKE (reason Idle) once the deadline passed; WAIT until the deadline when it comes before
    the grant's own expiry; None when the policy sets no idleTimeout or the grant is not Active."""
    status = request.status
    timeout = policy.idle_timeout_delta if policy is not None else None
    if timeout is None or status.phase is not Phase.ACTIVE or status.activated_at is None:
        return None
    since = max(status.activated_at, last_call) if last_call is not None else status.activated_at
    deadline = since + timeout
    if now >= deadline:
        seen = f"its last API call was at {format_time(last_call)}" if last_call else "it made no API call"
        return Step(
            Action.REVOKE,
            reason=Reason.IDLE,
            message=f"idle: {seen} and policy {request.spec.policy}'s idleTimeout is "
            f"{format_duration(timeout)}; the grant ended",
        )
    if status.expires_at is not None and status.expires_at <= deadline:
        return None  # the window closes first
    return Step(Action.WAIT, wake_at=deadline)


def idle_refusal(policy: GrantPolicySpec, *, has_source: bool) -> str | None:
    """At apply: an idleTimeout nothing could enforce is refused, never silently ignored."""
    if policy.idle_timeout is None or has_source:
        return None
    cluster = policy.target.cluster
    return (
        f"spec.idleTimeout {policy.idle_timeout} needs the target cluster's API calls, but the operator "
        f"has no activity source for cluster {cluster} (the chart's audit.activity.sources: the API "
        "server's audit log file or webhook receiver, or CloudWatch for EKS); configure one, or remove "
        "idleTimeout"
    )
