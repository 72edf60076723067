"""The OIDC replay set shared through the API server: a token used through one replica is refused
by every other (409 on the same Lease name), also after a restart, and forgotten after it expires."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes.client import CoordinationV1Api, CoreV1Api

from embedkube import EmbeddedCluster
from jitgrant.clusters.replay import SharedReplayCache, lease_name
from jitgrant.identity.claims import ClaimError

NAMESPACE = "jitgrant-system"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cluster() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster() as embedded:
        client = embedded.api_client()
        CoreV1Api(client).create_namespace({"metadata": {"name": NAMESPACE}})
        client.close()
        yield embedded


def _replica(cluster: EmbeddedCluster, clock: Clock) -> SharedReplayCache:
    return SharedReplayCache(cluster.api_client(), namespace=NAMESPACE, clock=clock, leeway=timedelta(0))


def test_a_token_used_on_one_replica_is_refused_on_another(cluster: EmbeddedCluster) -> None:
    clock = Clock()
    a, b = _replica(cluster, clock), _replica(cluster, clock)
    a.remember("jti:https://issuer#1", expires_at=clock.now + timedelta(minutes=5))
    assert b.seen("jti:https://issuer#1")
    with pytest.raises(ClaimError, match="already used"):
        b.remember("jti:https://issuer#1", expires_at=clock.now + timedelta(minutes=5))
    # A replica started afterwards knows it too: the set is in the API server, not in memory.
    with pytest.raises(ClaimError, match="already used"):
        _replica(cluster, clock).remember("jti:https://issuer#1", expires_at=clock.now + timedelta(minutes=5))
    b.remember("jti:https://issuer#2", expires_at=clock.now + timedelta(minutes=5))  # another token is fine


def test_the_record_names_no_claim_and_is_collected_after_the_token_expires(cluster: EmbeddedCluster) -> None:
    clock = Clock()
    a = _replica(cluster, clock)
    a.remember("jti:https://issuer#secret-jti", expires_at=clock.now + timedelta(minutes=5))
    leases = CoordinationV1Api(cluster.api_client()).list_namespaced_lease(NAMESPACE).items
    assert [lease.metadata.name for lease in leases] == [lease_name("jti:https://issuer#secret-jti")]
    assert "secret" not in leases[0].metadata.name
    assert a.collect() == 0  # not expired yet
    clock.now += timedelta(minutes=6)
    assert a.collect() == 1
    assert CoordinationV1Api(cluster.api_client()).list_namespaced_lease(NAMESPACE).items == []


def test_a_lapsed_record_not_yet_collected_does_not_refuse_forever(cluster: EmbeddedCluster) -> None:
    clock = Clock()
    a, b = _replica(cluster, clock), _replica(cluster, clock)
    a.remember("sha256:abc", expires_at=clock.now + timedelta(minutes=1))
    clock.now += timedelta(minutes=2)
    assert not b.seen("sha256:abc")
    b.remember("sha256:abc", expires_at=clock.now + timedelta(minutes=1))  # replaces the lapsed record
    with pytest.raises(ClaimError, match="already used"):
        a.remember("sha256:abc", expires_at=clock.now + timedelta(minutes=1))


def test_when_the_set_cannot_be_written_the_token_is_refused(cluster: EmbeddedCluster) -> None:
    clock = Clock()
    broken = SharedReplayCache(cluster.api_client(), namespace="no-such-namespace", clock=clock)
    with pytest.raises(ClaimError, match="could not record"):
        broken.remember("jti:x#1", expires_at=clock.now + timedelta(minutes=5))
