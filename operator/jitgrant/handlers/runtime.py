"""Everything the handlers share, built once at start-up and handed to kopf as `memo.runtime`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jitgrant.audit.trail import AuditTrail
from jitgrant.clusters.own import ClusterApi
from jitgrant.health import Health
from jitgrant.metrics import Metrics
from jitgrant.models import GrantPolicySpec, Target, TargetType
from jitgrant.settings import OperatorSettings

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class TargetUnavailable(Exception):
    """The policy's target cluster cannot be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool, reason: str = "TargetUnavailable") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reason = reason


@dataclass
class Runtime:
    settings: OperatorSettings
    own: ClusterApi
    audit: AuditTrail
    metrics: Metrics
    health: Health = field(default_factory=Health)
    # Resolves a policy's target to the cluster where grants land. Defaults to the own cluster
    # for InCluster targets; EKS support plugs in here.
    target_resolver: Callable[[Target, Mapping[str, str]], Any] | None = None
    clock: Clock = utcnow
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    sweep_task: asyncio.Task[None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # Set at shutdown: kopf lets timers run a few seconds longer, and a transition started then
    # might not finish. What is due is picked up by the start-up sweep of the next run instead.
    stopping: bool = False
    # The OIDC verifier the admission webhook uses (JWKS cache and jti replay memory live in it).
    oidc: Any = None

    # Target clusters other than our own that the sweep also covers (EKS targets plug in here).
    sweep_targets: Callable[[], list[ClusterApi]] | None = None

    @property
    def operator_usernames(self) -> frozenset[str]:
        """Whose updates are the operator's own (finalizers, progress annotations, status)."""
        return frozenset({self.settings.operator_username})

    def extra_sweep_clusters(self) -> list[ClusterApi]:
        return self.sweep_targets() if self.sweep_targets is not None else []

    def lock_for(self, key: str) -> asyncio.Lock:
        """One transition at a time per request: the event handler and the timer both reconcile."""
        return self._locks.setdefault(key, asyncio.Lock())

    async def get_policy(self, name: str) -> GrantPolicySpec | None:
        """The named policy's spec, or None when it does not exist or does not parse."""
        body = await self.own.get_policy(name)
        if body is None:
            return None
        try:
            return GrantPolicySpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return None

    async def cluster_for(self, target: Target, request: Mapping[str, str]) -> ClusterApi:
        if target.type is TargetType.IN_CLUSTER:
            return self.own
        if self.target_resolver is None:
            raise TargetUnavailable(
                f"policy targets EKS cluster {target.cluster}, "
                "but this operator has no EKS access configured",
                retryable=False,
            )
        api: ClusterApi = await self.target_resolver(target, request)
        return api
