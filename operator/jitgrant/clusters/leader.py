"""Leader election over a `coordination.k8s.io/v1` Lease.

Every replica serves the webhooks; only the holder of the Lease reconciles, expires and sweeps. The
algorithm is client-go's `leaderelection`: the holder renews `renewTime` every `renew_every`; another
replica takes the Lease over only when it has seen the record unchanged for `lease_seconds` by its
own monotonic clock (so clock skew between replicas does not matter), with an optimistic-concurrency
write (resourceVersion) that only one of them can win.

`holds()` turns False `lease_seconds - margin` after the last successful renewal even if the renew
loop itself is stuck, so a leader cut off from the API server stops before anyone else can take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("jitgrant.leader")

LEASE_NAME = "jitgrant-leader"
_TIMEOUT = (2.0, 3.0)  # (connect, read) seconds for each Lease call: a hung call must not hold the loop


def _micro_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    def __init__(
        self,
        client: ApiClient,
        *,
        namespace: str,
        identity: str,
        name: str = LEASE_NAME,
        lease_seconds: float = 8.0,
        renew_every: float = 1.0,
        margin: float = 1.0,
    ) -> None:
        if not renew_every < lease_seconds - margin:
            raise ValueError(
                f"renew_every ({renew_every}s) must be shorter than lease_seconds - margin "
                f"({lease_seconds - margin}s), or the leader loses the Lease between renewals"
            )
        self._api = CoordinationV1Api(client)
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.lease_seconds = lease_seconds
        self.renew_every = renew_every
        self.margin = margin
        self._valid_until = 0.0  # monotonic time until which this replica may act as leader
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.transitions = 0  # how often this replica became the leader
        # False: stop as a killed process would, leaving the Lease to lapse (tests, the chaos suite).
        self.release_on_stop = True
        # Told (local time sent, local time received, the answer's Date header) on every Lease read,
        # so this replica can measure its clock against the API server's (servertime.py).
        self.on_server_date: Callable[[datetime, datetime, str | None], None] | None = None
        self.local_clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def close(self) -> None:
        self._api.api_client.close()

    # ---- asking ------------------------------------------------------------------------------

    def holds(self) -> bool:
        """True while this replica holds the Lease; turns False on its own when renewals stop."""
        return time.monotonic() < self._valid_until

    async def confirm(self) -> bool:
        """Read the Lease from the API server: held by this replica and not lapsed (fencing)."""
        if not self.holds():
            return False
        try:
            lease = await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except ApiException:
            return False
        return bool(lease.spec and lease.spec.holder_identity == self.identity) and self.holds()

    # ---- the loop ----------------------------------------------------------------------------

    async def run(
        self,
        *,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[], Awaitable[None]],
    ) -> None:
        """Acquire, renew and, when lost, call on_stopped at once; until cancelled (then release)."""
        leading = False
        try:
            while True:
                try:
                    held = await self._try_acquire_or_renew()
                except Exception:
                    log.warning("leader election: Lease call failed", exc_info=True)
                    held = False
                if held and not leading:
                    leading = True
                    self.transitions += 1
                    log.warning("leader election: %s is now the leader", self.identity)
                    try:
                        await on_started()
                    except Exception:
                        # Taking over failed (a fresh install's API server answers 429 while the CRDs'
                        # storage initializes): give the Lease up and try again, instead of ending
                        # this loop and leaving no replica renewing it (issue 23, make e2e).
                        log.warning("leader election: starting to lead failed; retrying", exc_info=True)
                        leading = False
                        await on_stopped()
                        await self.release()
                elif leading and not self.holds():
                    leading = False
                    log.warning("leader election: %s lost the Lease; stopped acting", self.identity)
                    await on_stopped()
                await asyncio.sleep(self.renew_every)
        finally:
            if leading:
                await on_stopped()
                if self.release_on_stop:
                    await self.release()
                else:
                    self._valid_until = 0.0

    async def release(self) -> None:
        """Give the Lease up on a clean stop so another replica takes over at once (rollouts)."""
        self._valid_until = 0.0
        try:
            lease = await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            await self._call(self._api.replace_namespaced_lease, self.name, self.namespace, lease)
        except Exception:
            log.info("leader election: could not release the Lease; it lapses on its own", exc_info=True)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args, _request_timeout=_TIMEOUT)

    async def _try_acquire_or_renew(self) -> bool:
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            sent = self.local_clock()
            lease, _, headers = await self._call(
                self._api.read_namespaced_lease_with_http_info, self.name, self.namespace
            )
            if self.on_server_date is not None:
                self.on_server_date(sent, self.local_clock(), (headers or {}).get("Date"))
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, acquired=now, transitions=0),
            }
            try:
                await self._call(self._api.create_namespaced_lease, self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False  # another replica created it first
                raise
            self._valid_until = started + self.lease_seconds - self.margin
            return True
        spec = lease.spec
        holder = (spec.holder_identity or "") if spec else ""
        renew = spec.renew_time if spec else None
        record = (holder, str(renew))
        if record != self._observed:
            self._observed, self._observed_at = record, started
        duration = float((spec.lease_duration_seconds if spec else None) or self.lease_seconds)
        mine = holder == self.identity
        if not mine and holder and started < self._observed_at + duration:
            self._valid_until = 0.0
            return False  # someone else holds a Lease that has not lapsed by our own clock
        transitions = int((spec.lease_transitions if spec else None) or 0) + (0 if mine else 1)
        acquired = (spec.acquire_time if spec and mine else None) or now
        lease.spec = self._spec(now, acquired=acquired, transitions=transitions)
        try:
            # resourceVersion from the read: of two replicas racing for a lapsed Lease one gets 409.
            await self._call(self._api.replace_namespaced_lease, self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                self._valid_until = 0.0
                return False
            raise
        self._valid_until = started + self.lease_seconds - self.margin
        return True

    def _spec(self, now: datetime, *, acquired: datetime, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_seconds),
            "acquireTime": _micro_time(acquired),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }
