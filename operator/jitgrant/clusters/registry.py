"""Which cluster a policy targets, and a connection to it.

Clusters are keyed by identity (region and role, so account and partition, with the name), never by
name alone: two clusters called `prod` in two regions get two cache entries and two connections.

One operator serves many target clusters. Each cluster has its own lock, its own cached endpoint
and its own failure count: a cluster whose STS or API endpoint hangs holds only its own lock (and
one worker thread, for at most the AWS client's timeouts), so requests for other clusters go on.
After a retryable failure the cluster is left alone for a backoff delay that grows with each
consecutive failure; requests arriving meanwhile fail fast with the same reason instead of piling
more calls onto a throttled account.

Each cluster also has a `ClusterGate` (clusters/gate.py): the AWS steps and every call to its API
server run on the gate's own threads, within its budget, and fail fast while its circuit is open,
so a dark cluster holds none of the threads or slots the others need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from jitgrant.clusters.connection import ClusterConnection
from jitgrant.clusters.eks import ClusterEndpoint, EKSAccess, EKSTokenProvider
from jitgrant.clusters.errors import TARGET_RETRY_CAP_SECONDS, ClusterAccessError, backoff_delay
from jitgrant.clusters.gate import CircuitOpen, ClusterGate, Gates, GateSettings, GateStatus
from jitgrant.models import EKSTarget, Target, TargetType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _ClusterKey:
    region: str
    cluster_name: str
    role_arn: str
    external_id: str | None

    @classmethod
    def of(cls, target: EKSTarget) -> _ClusterKey:
        return cls(
            region=target.region,
            cluster_name=target.cluster_name,
            role_arn=target.role_arn,
            external_id=target.external_id,
        )


@dataclass
class _ClusterState:
    """Mutable per-cluster bookkeeping, only touched while holding `lock`."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    endpoint: ClusterEndpoint | None = None
    failures: int = 0
    last_error: ClusterAccessError | None = None
    quiet_until: datetime | None = None


class TargetClusters:
    """Maps a GrantPolicy's `Target` to a `ClusterConnection`, one cache entry per target cluster."""

    def __init__(
        self,
        *,
        own: ClusterConnection,
        eks: EKSAccess,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gates: GateSettings | None = None,
    ) -> None:
        self._own = own
        self._eks = eks
        self._clock = clock
        self._states: dict[_ClusterKey, _ClusterState] = {}
        self.gates = Gates(gates, clock=lambda: self._clock().timestamp())

    def gate(self, target: Target) -> ClusterGate | None:
        """The cluster's threads, budget and breaker (None for the operator's own cluster)."""
        if target.type is TargetType.IN_CLUSTER or target.eks is None:
            return None
        return self.gates(target.cluster)

    def status(self) -> list[GateStatus]:
        """Every target cluster's gate as it is now (circuit state, calls in flight, refusals)."""
        return self.gates.status()

    def close(self) -> None:
        self.gates.close()

    @property
    def own(self) -> ClusterConnection:
        return self._own

    async def connection(
        self, target: Target, *, session_name: str, source_identity: str
    ) -> ClusterConnection:
        """A connection to `target`, acting as a role session named `session_name` for `source_identity`.

        For EKS this assumes the role, reads the endpoint (once per cluster) and signs a first token
        before returning, so credential and cluster errors surface here, before the caller has
        created anything. Raises ClusterAccessError.
        """
        if target.type is TargetType.IN_CLUSTER or target.eks is None:
            return self._own
        eks_target = target.eks
        gate = self.gates(target.cluster)
        state = self._states.setdefault(_ClusterKey.of(eks_target), _ClusterState())
        async with state.lock:
            now = self._clock()
            if state.quiet_until is not None and state.last_error is not None and now < state.quiet_until:
                raise state.last_error.with_retry_after((state.quiet_until - now).total_seconds())
            try:
                # On the cluster's own threads; the AWS steps back off per cluster themselves (below).
                endpoint = await gate.run(
                    self._open, eks_target, state.endpoint, session_name, source_identity
                )
            except CircuitOpen:
                raise  # not tried: the gate counts its own failures and says when it tries again
            except ClusterAccessError as error:
                raise self._failed(state, error, eks_target) from error
            state.endpoint, state.failures, state.last_error, state.quiet_until = endpoint, 0, None, None
        return ClusterConnection(
            name=target.cluster,
            server=endpoint.server,
            ca_pem=endpoint.ca_pem if endpoint.server.startswith("https://") else None,
            token_provider=EKSTokenProvider(
                self._eks, eks_target, session_name=session_name, source_identity=source_identity
            ),
            gate=gate,
        )

    def invalidate(self, target: Target) -> None:
        """Forget the cached endpoint and CA of `target` (after a 401 or a TLS failure from it)."""
        if target.eks is not None:
            state = self._states.get(_ClusterKey.of(target.eks))
            if state is not None:
                state.endpoint = None

    def _open(
        self, target: EKSTarget, endpoint: ClusterEndpoint | None, session_name: str, source_identity: str
    ) -> ClusterEndpoint:
        session = self._eks.assume(target, session_name=session_name, source_identity=source_identity)
        if endpoint is None:
            endpoint = self._eks.describe(target, session)
        self._eks.eks_token(session, target.cluster_name)
        return endpoint

    def _failed(
        self, state: _ClusterState, error: ClusterAccessError, target: EKSTarget
    ) -> ClusterAccessError:
        if not error.retryable:
            log.warning(
                "cannot reach EKS cluster %s: %s (%s)", target.cluster_name, error.message, error.reason
            )
            return error
        # Capped low: the first call after the cluster (or STS) recovers is at most this far off.
        error = error.with_retry_after(backoff_delay(state.failures, cap=TARGET_RETRY_CAP_SECONDS))
        state.failures += 1
        state.last_error = error
        state.quiet_until = self._clock() + timedelta(seconds=error.retry_after)
        # Debug: the handlers log the cluster's change of state once (Runtime.cluster_failed).
        log.debug(
            "EKS cluster %s failed %d time(s) in a row: %s (%s); next try in %.1fs",
            target.cluster_name,
            state.failures,
            error.message,
            error.reason,
            error.retry_after,
        )
        return error
