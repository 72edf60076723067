"""When the target cluster refuses, lacks the namespace, or cannot be reached in the window."""

from __future__ import annotations

import logging

from jitgrant.clusters.errors import ClusterAccessError, Forbidden, NotFound, Refused
from jitgrant.clusters.port import StoredRequest
from jitgrant.grants.plan import GrantPlan
from jitgrant.lifecycle import Step
from jitgrant.models import (
    AccessRequest,
    GrantRef,
)
from jitgrant.models.vocabulary import (
    Reason,
    format_time,
)
from jitgrant.reconcile.decisions import fail
from jitgrant.reconcile.effects import Pass, status_patch

log = logging.getLogger("jitgrant.reconcile")


async def window_closed(
    p: Pass,
    stored: StoredRequest,
    request: AccessRequest,
    *,
    cluster: str,
    record: GrantRef | None,
    plan: GrantPlan,
) -> None:
    """Failed, TargetUnreachable: whatever an earlier attempt made goes (never a binding: it is
    created only inside the window), and the request never becomes Active."""
    why = f" (last: {request.status.reason}: {request.status.message})" if request.status.reason else ""
    message = (
        f"the grant's window closed at {format_time(plan.expires_at)} before cluster {cluster} could "
        f"be reached{why}; nothing was granted"
    )
    await fail(
        p, stored, request, reason=Reason.TARGET_UNREACHABLE, message=message, cluster=cluster, grant=record
    )


async def trouble(
    p: Pass,
    stored: StoredRequest,
    request: AccessRequest,
    exc: ClusterAccessError,
    *,
    cluster: str,
    record: GrantRef | None,
    step: Step | None = None,
) -> None:
    """A refusal fails the request (removing what was made); a missing namespace is waited for
    a bounded time; a passing problem is shown while the timer retries."""
    if isinstance(exc, NotFound) and exc.details_kind == "namespaces":
        await namespace_missing(p, stored, request, cluster=cluster, record=record)
        return
    if isinstance(exc, Forbidden) or (isinstance(exc, Refused) and exc.status == 422):
        # The API server itself refused: e.g. the ClusterRole is not in the operator's `bind`
        # allowlist. Nothing stays behind; say exactly what the server said.
        role = step.decision.cluster_role if step is not None and step.decision is not None else None
        await fail(
            p,
            stored,
            request,
            reason=Reason.GRANT_REFUSED_BY_CLUSTER,
            message=refusal_message(cluster, role, exc),
            cluster=cluster,
            grant=record,
        )
        return
    if not exc.retryable:
        await fail(p, stored, request, reason=exc.reason, message=exc.message, cluster=cluster, grant=record)
        return
    engine = p.engine
    engine.metrics.reconcile_error(handler="activate")
    engine.cluster_failed(cluster, exc)
    retry_at = engine.next_attempt(cluster, (stored.namespace, stored.name), at_least=exc.retry_after)
    p.retry_at = retry_at
    message = f"{exc.message}; next attempt at {format_time(retry_at)}"
    if request.status.reason == exc.reason and request.status.message == message:
        return  # already shown; writing again would only wake every watcher for nothing
    await p.write_status(stored, request, status_patch(reason=exc.reason, message=message))


async def namespace_missing(
    p: Pass, stored: StoredRequest, request: AccessRequest, *, cluster: str, record: GrantRef | None
) -> None:
    """A namespace may be created moments after the request; after `namespace_wait` the request
    fails for good, so it can never become Active later, however late the namespace appears."""
    engine = p.engine
    planned = record.planned_at if record is not None else None
    waited = p.now() - (planned or p.now())
    namespace = request.spec.namespace
    if waited >= engine.settings.namespace_wait:
        await fail(
            p,
            stored,
            request,
            reason=Reason.NAMESPACE_NOT_FOUND,
            message=f"namespace {namespace} does not exist in cluster {cluster} (waited "
            f"{int(waited.total_seconds())}s); nothing was granted",
            cluster=cluster,
            grant=record,
        )
        return
    if request.status.reason == Reason.WAITING_FOR_NAMESPACE:
        return
    message = (
        f"namespace {namespace} does not exist in cluster {cluster}; waiting up to "
        f"{int(engine.settings.namespace_wait.total_seconds())}s for it before failing"
    )
    await p.write_status(stored, request, status_patch(reason=Reason.WAITING_FOR_NAMESPACE, message=message))


def refusal_message(cluster: str, cluster_role: str | None, exc: ClusterAccessError) -> str:
    what = f"bind ClusterRole {cluster_role}" if cluster_role else "create the grant's Role and RoleBinding"
    hint = (
        f"; the operator may bind only the ClusterRoles its installation allows (Helm value "
        f"grantableClusterRoles): add {cluster_role} there if the platform team means to grant it"
        if cluster_role and exc.status == 403
        else ""
    )
    said = exc.server_message or exc.message
    return f"cluster {cluster} refused to {what}{hint}. The API server said: {said}"
