"""The OIDC replay set, shared by every replica through the API server.

A used token is remembered as a `coordination.k8s.io/v1` Lease in the operator's namespace, named
after a hash of its replay key (`iss` + `jti`, or a hash of what the issuer signed:
`claims.replay_key_for`). Creating it is atomic in the API
server, so a second use of the same token is refused with 409 whichever replica's webhook sees it,
and it survives a restart of every replica. Each Lease carries the time after which the token can no
longer pass the expiry check; the leader deletes those past it (`collect`).

The webhook asks synchronously (the verifier's interface is synchronous): one short API call per
OIDC-authenticated request, bounded by a 2 s connect / 3 s read timeout, and failing closed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException

from jitgrant.identity.claims import DEFAULT_LEEWAY, ClaimError, ReplayCache
from jitgrant.models.vocabulary import EXPIRES_AT_ANNOTATION, REPLAY_LABEL, format_time, parse_time

log = logging.getLogger("jitgrant.replay")

_TIMEOUT = (2.0, 3.0)
_PREFIX = "jitgrant-replay-"
_REPLAYED = "token was already used (replayed 'jti'); get a fresh token"


def lease_name(key: str) -> str:
    """The object that stands for one used token: a hash, so no claim value reaches a name."""
    return _PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:48]


class SharedReplayCache(ReplayCache):
    def __init__(
        self,
        client: ApiClient,
        *,
        namespace: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        leeway: timedelta = DEFAULT_LEEWAY,
    ) -> None:
        super().__init__(clock=clock, leeway=leeway)
        self._api = CoordinationV1Api(client)
        self._namespace = namespace
        self._clock = clock
        self._leeway = leeway

    def seen(self, key: str) -> bool:
        """Used before, on this replica or any other (dry runs ask this); unsure means seen."""
        if super().seen(key):
            return True
        try:
            lease = self._api.read_namespaced_lease(
                lease_name(key), self._namespace, _request_timeout=_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            log.warning("replay set unreadable (%s); treating the token as used", exc.status)
            return True
        except Exception:
            log.warning("replay set unreachable; treating the token as used", exc_info=True)
            return True
        return not self._lapsed(lease)

    def remember(self, key: str, *, expires_at: datetime) -> None:
        """Record the token as used everywhere; ClaimError if any replica recorded it before, or if
        the record cannot be written (fail closed: an unrecorded token could be replayed)."""
        super().remember(key, expires_at=expires_at)
        until = expires_at + self._leeway
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease_name(key),
                "namespace": self._namespace,
                "labels": {REPLAY_LABEL: "true"},
                "annotations": {EXPIRES_AT_ANNOTATION: format_time(until + timedelta(seconds=1))},
            },
            "spec": {},
        }
        for _ in range(2):
            try:
                self._api.create_namespaced_lease(self._namespace, body, _request_timeout=_TIMEOUT)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise ClaimError(
                        f"the replay set could not record the token ({exc.status}); try again"
                    ) from exc
            except Exception as exc:
                raise ClaimError("the replay set could not record the token; try again") from exc
            if not self._delete_if_lapsed(lease_name(key)):
                raise ClaimError(_REPLAYED)
        raise ClaimError(_REPLAYED)

    def _lapsed(self, lease: object) -> bool:
        annotations = getattr(getattr(lease, "metadata", None), "annotations", None) or {}
        try:
            return parse_time(annotations.get(EXPIRES_AT_ANNOTATION, "")) <= self._clock()
        except ValueError:
            return False  # unreadable: keep refusing rather than forget

    def _delete_if_lapsed(self, name: str) -> bool:
        """A record past its token's expiry that collection has not reached yet: remove it."""
        try:
            lease = self._api.read_namespaced_lease(name, self._namespace, _request_timeout=_TIMEOUT)
            if not self._lapsed(lease):
                return False
            self._api.delete_namespaced_lease(name, self._namespace, _request_timeout=_TIMEOUT)
            return True
        except ApiException:
            return False

    def collect(self) -> int:
        """Delete every record whose token has expired (the leader does this every sweep)."""
        removed = 0
        items = self._api.list_namespaced_lease(
            self._namespace, label_selector=f"{REPLAY_LABEL}=true", _request_timeout=_TIMEOUT
        ).items
        for lease in items:
            if self._lapsed(lease):
                try:
                    self._api.delete_namespaced_lease(
                        lease.metadata.name, self._namespace, _request_timeout=_TIMEOUT
                    )
                    removed += 1
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        return removed
