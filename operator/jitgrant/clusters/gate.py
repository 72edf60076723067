"""Isolation between target clusters: each has its own budget, its own threads and a circuit breaker.

One operator serves many clusters, and a cluster that goes dark (a region down, a server that
accepts connections and never answers, or completes TLS and then stalls) must cost the others
nothing. Before this module every call to every cluster ran on the operator's one thread pool and
every pass held one of the scheduler's shared slots: 20 dark clusters of 50 made healthy clusters'
expiries 24.5 s late (issue 30). A `ClusterGate` gives each target cluster:

- **its own threads**: blocking calls into the cluster run on a small executor of its own, so a
  call hung in a socket read until its read timeout holds one of *that cluster's* threads, never
  one of the pool the operator's own cluster and the other targets use;
- **its own budget**: at most `calls` calls in flight, and at most `passes` reconcile passes in
  flight (the scheduler waits on these instead of its shared slots, so passes waiting on a dark
  cluster never take a slot a healthy cluster's grant needs);
- **a circuit breaker**: `closed` (calls go through); after `failure_threshold` calls in a row that
  got no usable answer (no connection, a timeout, TLS failure, 429 or 5xx), `open`: every call fails
  at once with the last failure's reason (a retryable `CircuitOpen`, the `Unavailable` family the
  reconciler already answers with a capped retry and `RemovalOverdue`), without a thread or a
  socket; after a delay that doubles with each failed probe (capped, as the retries are), `half-open`:
  one call goes through as the probe while the others still fail fast; its success closes the
  circuit, its failure opens it again.

Each change of state is one log line (and one call of `on_change`, which feeds the
`jitgrant_target_circuit_state` metric); a refused call logs nothing. `status()` is what `/status`,
the bench and the tests read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from jitgrant.clusters.errors import TARGET_RETRY_CAP_SECONDS, ClusterAccessError, Unavailable

log = logging.getLogger("jitgrant.clusters")

T = TypeVar("T")

# Per target cluster. Four calls at once keep a healthy cluster's grants as fast as the shared
# pool did (the API server, not the operator, is what a single cluster's grants wait for); more
# would only let a dark cluster hold more threads until the breaker opens.
DEFAULT_CALLS = 4
DEFAULT_PASSES = 8
DEFAULT_FAILURE_THRESHOLD = 2
# The first open period; it doubles with each failed probe up to TARGET_RETRY_CAP_SECONDS, so a
# cluster that comes back is noticed within that cap (the reconciler's retries use the same one).
DEFAULT_OPEN_SECONDS = 1.0

_numbers = itertools.count(1)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# The value of `jitgrant_target_circuit_state`: 0 closed, 1 half-open (probing), 2 open.
STATE_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class CircuitOpen(Unavailable):
    """Refused without trying: the cluster's circuit is open (or half-open with its probe out)."""


@dataclass(frozen=True)
class GateSettings:
    calls: int = DEFAULT_CALLS
    passes: int = DEFAULT_PASSES
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    open_seconds: float = DEFAULT_OPEN_SECONDS
    open_cap_seconds: float = TARGET_RETRY_CAP_SECONDS

    def __post_init__(self) -> None:
        for name in ("calls", "passes", "failure_threshold"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"GateSettings.{name} must be 1 or more, got {value}")
        if not 0 < self.open_seconds <= self.open_cap_seconds:
            raise ValueError(
                f"GateSettings.open_seconds must be above 0 and at most open_cap_seconds "
                f"({self.open_cap_seconds}), got {self.open_seconds}"
            )


@dataclass(frozen=True)
class GateStatus:
    """One cluster's gate as it is now (`TargetClusters.status()`)."""

    cluster: str
    state: CircuitState
    # Monotonic seconds the circuit has been in this state.
    for_seconds: float
    # Seconds until an open circuit lets its probe through (0 when closed or probing).
    probe_in: float
    calls_in_flight: int
    passes_in_flight: int
    # Calls that got no usable answer in a row, and calls refused without trying since it opened.
    failures: int
    refused: int
    last_error: str | None


def is_outage(error: BaseException) -> bool:
    """Whether a call's failure says the cluster is not answering (vs. answering "no").

    An answer of any kind (a 404, a 409, a 403, a 422) proves the cluster is there; no connection, a
    timeout, a TLS failure, 429 and 5xx do not."""
    if isinstance(error, ClusterAccessError):
        return error.retryable
    if isinstance(error, ApiException):
        status = error.status if isinstance(error.status, int) else 0
        return status == 0 or status == 429 or status >= 500
    return isinstance(error, urllib3.exceptions.HTTPError | OSError | TimeoutError)


class ClusterGate:
    """One target cluster's threads, budget and circuit breaker (see the module docstring)."""

    def __init__(
        self,
        cluster: str,
        *,
        settings: GateSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings or GateSettings()
        self._clock = clock
        self.on_change = on_change
        self._calls = asyncio.Semaphore(self.settings.calls)
        self._passes = asyncio.Semaphore(self.settings.passes)
        self._calls_in_flight = 0
        self._passes_in_flight = 0
        self._executor: ThreadPoolExecutor | None = None
        self._state = CircuitState.CLOSED
        self._since = clock()
        self._failures = 0  # calls in a row without a usable answer
        self._opened = 0  # times opened in a row (probes that failed + 1): the open period doubles
        self._probe_at = 0.0
        self._probing = False
        self._refused = 0
        self._last_error: ClusterAccessError | None = None
        self._number = next(_numbers)

    # ---- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._state

    def status(self) -> GateStatus:
        now = self._clock()
        probe_in = max(0.0, self._probe_at - now) if self._state is CircuitState.OPEN else 0.0
        return GateStatus(
            cluster=self.cluster,
            state=self._state,
            for_seconds=now - self._since,
            probe_in=probe_in,
            calls_in_flight=self._calls_in_flight,
            passes_in_flight=self._passes_in_flight,
            failures=self._failures,
            refused=self._refused,
            last_error=self._last_error.message if self._last_error is not None else None,
        )

    def _set(self, state: CircuitState) -> None:
        if state is self._state:
            return
        before, self._state = self._state, state
        held = self._clock() - self._since
        self._since = self._clock()
        if state is CircuitState.OPEN and before is CircuitState.CLOSED:
            last = self._last_error
            log.warning(
                "target cluster %s: circuit open after %d call(s) in a row without an answer (%s); "
                "calls to it fail fast, first probe in %.1fs",
                self.cluster,
                self._failures,
                f"{last.reason}: {last.message}" if last is not None else "no answer",
                self._probe_at - self._clock(),
            )
        elif state is CircuitState.CLOSED:
            log.warning(
                "target cluster %s: circuit closed, the probe was answered (it was not for %.1fs; "
                "%d call(s) refused meanwhile)",
                self.cluster,
                held,
                self._refused,
            )
            self._refused = 0
        else:
            # Open -> half-open -> open again repeats every probe while the cluster stays dark:
            # debug only, so a dark cluster logs two lines (open, closed), not one per probe.
            log.debug("target cluster %s: circuit %s (was %s for %.1fs)", self.cluster, state, before, held)
        if self.on_change is not None:
            self.on_change(self.cluster, state)

    def _admit(self, *, claim: bool) -> bool:
        """Whether a call may go now; True means it is the half-open probe (claimed as such when
        `claim`: only one is out at a time). Raises CircuitOpen."""
        if self._state is CircuitState.CLOSED:
            return False
        now = self._clock()
        if self._state is CircuitState.OPEN and now >= self._probe_at:
            self._set(CircuitState.HALF_OPEN)
        if self._state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = claim
            return True
        self._refused += 1
        raise self._refusal(now)

    def _refusal(self, now: float) -> CircuitOpen:
        wait = max(0.0, self._probe_at - now) if self._state is CircuitState.OPEN else 1.0
        last = self._last_error
        reason = last.reason if last is not None else "ClusterUnreachable"
        said = last.message if last is not None else f"cluster {self.cluster} does not answer"
        # No counters or times in the words: a request's status is written again only when they
        # change (the reconciler appends the next attempt itself).
        return CircuitOpen(
            reason=reason,
            message=f"{said} (not tried again: calls to cluster {self.cluster} fail fast until a "
            "probe is answered)",
            retryable=True,
            retry_after=max(wait, 0.5),
        )

    def _answered(self) -> None:
        self._failures = 0
        self._opened = 0
        self._last_error = None
        self._set(CircuitState.CLOSED)

    def _failed(self, error: BaseException) -> None:
        self._failures += 1
        if isinstance(error, ClusterAccessError):
            self._last_error = error
        else:
            self._last_error = Unavailable(
                reason="ClusterUnreachable",
                message=f"could not reach the API server of cluster {self.cluster} ({type(error).__name__})",
                retryable=True,
            )
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.settings.failure_threshold:
            period = min(
                self.settings.open_cap_seconds, self.settings.open_seconds * 2.0 ** min(self._opened, 30)
            )
            self._opened += 1
            self._probe_at = self._clock() + period
            self._set(CircuitState.OPEN)

    def _observe(self, error: BaseException | None, *, probe: bool) -> None:
        if probe:
            self._probing = False
        if error is None or not is_outage(error):
            self._answered()
        elif self._state is not CircuitState.OPEN or probe:
            # A call already in flight when the circuit opened says nothing new: the open period
            # is not pushed back by the stragglers of the same outage.
            self._failed(error)

    # ---- calls ---------------------------------------------------------------------------------

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.settings.calls, thread_name_prefix=f"jitgrant-target-{self._number}"
            )
        return self._executor

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on this cluster's threads, within its budget, unless its circuit
        is open (then CircuitOpen at once). Exceptions leave as `fn` raised them; the breaker only
        looks at them (`is_outage`)."""
        return await self._call(fn, args, kwargs, observe=True)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """As `call`, but the outcome does not move the breaker: for steps with a backoff of their
        own (the AWS steps in TargetClusters, which fail fast per cluster themselves)."""
        return await self._call(fn, args, kwargs, observe=False)

    async def _call(self, fn: Callable[..., T], args: Any, kwargs: Any, *, observe: bool) -> T:
        self._admit(claim=False)  # fail fast before queueing for a slot
        async with self._calls:
            # The circuit may have opened while this call waited its turn.
            probe = self._admit(claim=observe) and observe
            self._calls_in_flight += 1
            try:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._pool(), functools.partial(fn, *args, **kwargs))
            except BaseException as error:
                if isinstance(error, asyncio.CancelledError):
                    if probe:
                        self._probing = False
                    raise
                if observe:
                    self._observe(error, probe=probe)
                raise
            finally:
                self._calls_in_flight -= 1
        if observe:
            self._observe(None, probe=probe)
        return result

    @contextlib.asynccontextmanager
    async def pass_slot(self) -> Any:
        """One of this cluster's reconcile slots (the scheduler's, for a request targeting it)."""
        async with self._passes:
            self._passes_in_flight += 1
            try:
                yield
            finally:
                self._passes_in_flight -= 1

    def close(self) -> None:
        """Let the threads go (a call still hung in one ends at its read timeout, unwaited)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class Gates:
    """The gate of every target cluster, by identity (ARN), made on first use."""

    def __init__(self, settings: GateSettings | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or GateSettings()
        self._clock = clock
        self._gates: dict[str, ClusterGate] = {}
        self._on_change: Callable[[str, CircuitState], None] | None = None

    def observe(self, on_change: Callable[[str, CircuitState], None]) -> None:
        """Call `on_change(cluster, state)` at each change of state of any cluster's circuit."""
        self._on_change = on_change
        for gate in self._gates.values():
            gate.on_change = on_change

    def __call__(self, cluster: str) -> ClusterGate:
        gate = self._gates.get(cluster)
        if gate is None:
            gate = ClusterGate(cluster, settings=self.settings, clock=self._clock, on_change=self._on_change)
            self._gates[cluster] = gate
        return gate

    def get(self, cluster: str) -> ClusterGate | None:
        return self._gates.get(cluster)

    def __iter__(self) -> Iterator[ClusterGate]:
        return iter(list(self._gates.values()))

    def status(self) -> list[GateStatus]:
        return [gate.status() for gate in self]

    def close(self) -> None:
        for gate in self:
            gate.close()
