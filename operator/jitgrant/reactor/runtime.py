"""Everything the engine shares, built once at start-up by `operator.runner.build_runtime` and handed
to kopf as `memo.runtime`: the passes see it as `reconcile.ports.Engine`, the webhooks as
`operator.context.AdmissionContext`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jitgrant.clusters.connection import ClusterConnection
from jitgrant.clusters.errors import TARGET_RETRY_CAP_SECONDS, ClusterAccessError, Refused, backoff_delay
from jitgrant.clusters.own import ClusterApi
from jitgrant.clusters.port import ClusterPort, GrantTarget, StoredRequest
from jitgrant.clusters.registry import TargetClusters
from jitgrant.health import Health
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant.lifecycle.open_requests import OpenRequests, RefusalTally
from jitgrant.metrics import Metrics
from jitgrant.models import GrantPolicySpec, Target, TargetType
from jitgrant.models.vocabulary import Reason
from jitgrant.policy.gate import ReadyState, ready_state
from jitgrant.reconcile.ports import AuditPort, EventRecorder, NoEvents, Notices
from jitgrant.settings import OperatorSettings

Clock = Callable[[], datetime]

log = logging.getLogger("jitgrant.clusters")

# The role session the operator uses for its own housekeeping (revocation, sweep) in a target
# cluster: never a requester's session, so one request's credentials never act for another.
OPERATOR_SESSION = "jitgrant-operator"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: OperatorSettings
    own: ClusterPort
    audit: AuditPort
    metrics: Metrics
    health: Health = field(default_factory=Health)
    # Reaches EKS targets through an assumed role; None: this operator grants in its own cluster only.
    targets: TargetClusters | None = None
    clock: Clock = utcnow
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # (cluster, uid) of labelled objects without the owner seal the sweep has already reported.
    unproven_seen: set[tuple[str, str]] = field(default_factory=set)
    # Clients for the operator's own housekeeping session, one per target cluster.
    _housekeeping: dict[str, GrantTarget] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # Set at shutdown: kopf lets timers run a few seconds longer, and a transition started then
    # might not finish. What is due is picked up by the start-up sweep of the next run instead.
    stopping: bool = False
    # The OIDC verifier the admission webhook uses (JWKS cache and jti replay memory live in it).
    oidc: OIDCVerifier | None = None
    # The verifier's JWKS cache: the policy Ready check fetches each OIDC issuer's discovery
    # document through it. None: issuers are not checked.
    identity_keys: JWKSCache | None = None
    # Posts notices of transitions (jitgrant.notify.Notifier); None: no notifications configured.
    notifier: Notices | None = None
    # The own cluster's client as built, under any wrapper `own` gets (fencing, a test's counter):
    # kopf logs in with its credentials. None: a runtime kopf does not run (the unit tests').
    own_api: ClusterApi | None = None
    # Kubernetes Events on requests (clusters/events.py in the operator; a fake that collects them
    # in the unit tests), from any task: kopf's own `kopf.event` posts only from kopf's tasks.
    events: EventRecorder = field(default_factory=NoEvents)
    # Per request uid, the transitions whose audit record this process wrote ahead of a status
    # write: a pass retried after a failed write does not write them again (only a restart may).
    written_ahead: dict[str, set[str]] = field(default_factory=dict)
    # Per request uid, the resourceVersions of this process's latest writes to it: the watch's
    # echo of such a write is nothing new (the pass that wrote it went on from the write's answer).
    own_versions: dict[str, deque[str]] = field(default_factory=dict)
    # Open requests by requester and scope, from this replica's watch and its own writes: admission
    # refuses duplicates from it, the reconciler closes the races it misses (lifecycle/open_requests.py).
    open_requests: OpenRequests = field(default_factory=OpenRequests)
    # Guardrail refusals at admission, audited at most once per requester per minute.
    refusals: RefusalTally = field(default_factory=RefusalTally)
    # GrantPolicy specs from this replica's watch: admission's guardrails and the reconciler read them
    # without a call (a change after a pass read one makes its requests due again: Scheduler.policy_changed).
    watched_policies: dict[str, GrantPolicySpec] = field(default_factory=dict)
    # Their Ready conditions: admission refuses requests under a policy that is not Ready.
    watched_ready: dict[str, ReadyState] = field(default_factory=dict)

    def policy_seen(self, name: str, spec: Any, *, deleted: bool, body: Any = None) -> None:
        self.watched_policies.pop(name, None)
        self.watched_ready.pop(name, None)
        if not deleted and spec is not None:
            with contextlib.suppress(ValidationError):
                self.watched_policies[name] = GrantPolicySpec.model_validate(spec)
            state = ready_state(body) if isinstance(body, Mapping) else None
            if state is not None:
                self.watched_ready[name] = state

    # Namespace labels from this replica's Namespace watch: namespaceSelector policies are matched
    # against them (policy/selector.py) at admission and in each reconcile pass.
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def namespace_seen(self, name: str, labels: Mapping[str, str], *, deleted: bool) -> bool:
        """Record a Namespace watch event; True when a namespace seen before changed its labels (or
        went), so grants under selector policies are held against them again."""
        before = self.namespace_labels.pop(name, None)
        if not deleted:
            self.namespace_labels[name] = dict(labels)
        return before is not None and before != self.namespace_labels.get(name)

    # Per target cluster: reachable at the last call (absent: not yet called). A change is logged
    # once, instead of a line (or a traceback) per retry of every request waiting on it.
    reachable: dict[str, bool] = field(default_factory=dict)
    # Per target cluster, the uids of requests whose removal there is overdue (the alert's gauge).
    overdue: dict[str, set[str]] = field(default_factory=dict)
    # Per target cluster, failed attempts in a row (the backoff) and the requests waiting on it.
    failures: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # Called with the requests that waited on a cluster when any call to it succeeds again (the
    # scheduler retries them at once instead of each waiting out its backoff).
    on_reachable: Callable[[set[tuple[str, str]]], None] | None = None

    def cluster_reached(self, cluster: str) -> None:
        """A call to `cluster` succeeded: its backoff starts over, and whatever waited on it goes."""
        if self.reachable.get(cluster) is False:
            log.warning("target cluster %s is reachable again", cluster)
        if self.reachable.get(cluster) is not True:
            self.metrics.set_target_reachable(cluster=cluster, reachable=True)
        self.reachable[cluster] = True
        self.failures.pop(cluster, None)
        waiting = self.waiting.pop(cluster, set())
        if waiting and self.on_reachable is not None:
            self.on_reachable(waiting)

    def cluster_failed(self, cluster: str, error: ClusterAccessError) -> None:
        """A failed call to `cluster`: logged when the cluster goes from reachable (or unknown) to
        not, not on every retry."""
        if not error.retryable:
            return  # a refusal: the cluster answered
        if self.reachable.get(cluster) is not False:
            log.warning("target cluster %s is unreachable: %s (%s)", cluster, error.message, error.reason)
            self.metrics.set_target_reachable(cluster=cluster, reachable=False)
        self.reachable[cluster] = False
        self.failures[cluster] = self.failures.get(cluster, 0) + 1

    def next_attempt(self, cluster: str, key: tuple[str, str], *, at_least: float = 0.0) -> datetime:
        """When a request waiting on `cluster` tries again: a backoff over the cluster's failures in a
        row, capped at TARGET_RETRY_CAP_SECONDS, and never before the cluster's own quiet time."""
        self.waiting.setdefault(cluster, set()).add(key)
        attempt = max(0, self.failures.get(cluster, 1) - 1)
        delay = max(at_least, backoff_delay(attempt, cap=TARGET_RETRY_CAP_SECONDS), 1.0)
        at = self.clock() + timedelta(seconds=delay)
        # Whole seconds, as status shows times: rounded up, so no attempt comes before its delay.
        return at.replace(microsecond=0) + timedelta(seconds=1) if at.microsecond else at

    def removal_overdue(self, cluster: str, uid: str, overdue: bool) -> None:
        """Count (or stop counting) one request's removal in `cluster` as overdue."""
        uids = self.overdue.setdefault(cluster, set())
        before = len(uids)
        if overdue:
            uids.add(uid)
        else:
            uids.discard(uid)
        if len(uids) != before or overdue:
            self.metrics.set_removal_overdue(cluster=cluster, count=len(uids))

    def wrote(self, stored: StoredRequest) -> None:
        """Remember a version of a request this process wrote (the last few per request)."""
        # Its own decision is in the index at once, before the watch's echo (which it then skips).
        self.open_requests.observe(stored.body)
        if stored.resource_version is not None:
            self.own_versions.setdefault(stored.uid, deque(maxlen=4)).append(stored.resource_version)

    def is_own_echo(self, uid: str, resource_version: str | None) -> bool:
        return resource_version is not None and resource_version in self.own_versions.get(uid, ())

    def forget_request(self, key: str, uid: str) -> None:
        """A deleted request: drop what this process kept about it."""
        self.written_ahead.pop(uid, None)
        self.own_versions.pop(uid, None)
        for cluster, uids in self.overdue.items():
            if uid in uids:
                self.removal_overdue(cluster, uid, False)
        namespace, _, name = key.partition("/")
        for waiting in self.waiting.values():
            waiting.discard((namespace, name))
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    @property
    def operator_usernames(self) -> frozenset[str]:
        """Whose updates are the operator's own (finalizers, progress annotations, status)."""
        return frozenset({self.settings.operator_username})

    def lock_for(self, key: str) -> asyncio.Lock:
        """One transition at a time per request: the event handler and the timer both reconcile."""
        return self._locks.setdefault(key, asyncio.Lock())

    async def get_policy(self, name: str) -> GrantPolicySpec | None:
        """The named policy's spec, or None when it does not exist or does not parse."""
        stored = await self.own.get_policy(name)
        if stored is None:
            return None
        try:
            return stored.parse()
        except ValidationError:
            return None

    async def connection_for(
        self, target: Target, *, session_name: str, source_identity: str
    ) -> ClusterConnection:
        """Where and as whom to reach `target`; raises ClusterAccessError with a reason for the status."""
        if target.type is TargetType.IN_CLUSTER:
            raise Refused(
                reason=Reason.TARGET_UNAVAILABLE,
                message="the operator's own cluster needs no connection",
                retryable=False,
            )
        if self.targets is None:
            raise Refused(
                reason=Reason.EKS_NOT_CONFIGURED,
                message=f"policy targets EKS cluster {target.cluster_name}, but this operator has no EKS "
                "access configured (run it with AWS credentials, e.g. IRSA, and --eks)",
                retryable=False,
            )
        return await self.targets.connection(
            target, session_name=session_name, source_identity=source_identity
        )

    async def cluster_for(self, target: Target, *, session_name: str, source_identity: str) -> GrantTarget:
        """A client for `target` acting for one request (close it when done), or the own cluster."""
        if target.type is TargetType.IN_CLUSTER:
            return self.own
        connection = await self.connection_for(
            target, session_name=session_name, source_identity=source_identity
        )
        return ClusterApi(
            name=target.cluster,
            client=connection.to_api_client(),
            connection=connection,
            request_timeout=self.settings.target_request_timeout,
        )

    async def housekeeping_cluster(self, target: Target) -> GrantTarget:
        """The operator's own client for `target` (revocation, sweep), cached per cluster identity."""
        if target.type is TargetType.IN_CLUSTER:
            return self.own
        cached = self._housekeeping.get(target.cluster)
        if cached is not None:
            return cached
        api = await self.cluster_for(target, session_name=OPERATOR_SESSION, source_identity=OPERATOR_SESSION)
        self._housekeeping[target.cluster] = api
        return api

    async def sweep_targets(self) -> list[Target]:
        """Each EKS target some GrantPolicy names, once per cluster identity (ARN: same-named
        clusters in two regions or accounts are two targets): the clusters the sweep covers."""
        targets: dict[str, Target] = {}
        for stored in await self.own.list_policies():
            try:
                target = stored.parse().target
            except ValidationError:
                continue
            if target.type is not TargetType.IN_CLUSTER:
                targets.setdefault(target.cluster, target)
        return list(targets.values())

    def close(self) -> None:
        for api in self._housekeeping.values():
            api.close()
        self._housekeeping.clear()
        if self.targets is not None:
            self.targets.close()  # each target cluster's own threads (clusters/gate.py)
        self.own.close()
