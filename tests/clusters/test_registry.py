"""Many target clusters at once: one slow or failing cluster never holds up another."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from jitgrant.clusters.connection import BearerToken, ClusterConnection, StaticToken
from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.clusters.registry import TargetClusters
from jitgrant.models import EKSTarget, Target, TargetType

from ._aws import ACCOUNT, REGION, TARGET_ROLE, FakeClock, create_eks_cluster

OWN = ClusterConnection(
    name="in-cluster", server="http://127.0.0.1:1", token_provider=StaticToken(BearerToken("own-token"))
)
DEV_SERVER = ("http://127.0.0.1:18443", None)


class SilentServer:
    """Accepts TCP connections and never answers: an AWS endpoint that hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.accepted = threading.Event()
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)
            self.accepted.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def eks(target: EKSTarget) -> Target:
    return Target(type=TargetType.EKS, eks=target)


async def test_in_cluster_targets_get_the_operator_own_connection(eks_access: EKSAccess) -> None:
    targets = TargetClusters(own=OWN, eks=eks_access)
    connection = await targets.connection(Target(), session_name="req", source_identity="alice")
    assert connection is OWN


async def test_a_hanging_sts_endpoint_does_not_stall_other_clusters(
    moto_url: str, base_session: boto3.Session, silent: SilentServer
) -> None:
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        region_endpoints={
            "eu-south-1": RegionEndpoints(sts=silent.url, eks=silent.url),
            REGION: RegionEndpoints(sts=moto_url, eks=moto_url),
        },
        endpoint_overrides={"prod-eu": DEV_SERVER},
        connect_timeout=1.0,
        read_timeout=3.0,
    )
    targets = TargetClusters(own=OWN, eks=access)
    stuck = EKSTarget(cluster_name="milan", region="eu-south-1", role_arn=TARGET_ROLE)
    healthy = EKSTarget(cluster_name="prod-eu", region=REGION, role_arn=TARGET_ROLE)

    hanging = asyncio.create_task(
        targets.connection(eks(stuck), session_name="req-1", source_identity="alice")
    )
    assert await asyncio.to_thread(silent.accepted.wait, 5.0), "the stuck cluster's STS call is in flight"

    connection = await asyncio.wait_for(
        targets.connection(eks(healthy), session_name="req-2", source_identity="bob"), timeout=3.0
    )
    assert connection.server == DEV_SERVER[0]
    assert connection.token() is not None
    assert not hanging.done(), "the healthy cluster was served while the other one still hung"

    with pytest.raises(ClusterAccessError) as caught:
        await hanging
    assert caught.value.reason == "AWSUnreachable" and caught.value.retryable
    assert caught.value.retry_after > 0
    assert len(silent.connections) == 1, "no hidden retries inside the worker thread; backoff is ours"


async def test_after_a_retryable_failure_the_cluster_is_left_alone_for_the_backoff(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    """Stubber: moto does not throttle. A call during the backoff window must not reach STS: the
    stub has nothing queued, so a call would fail with a different error."""
    targets = TargetClusters(own=OWN, eks=eks_access, clock=clock)
    with Stubber(eks_access.sts_client(REGION)) as stub:
        stub.add_client_error("assume_role", service_error_code="Throttling", http_status_code=400)
        with pytest.raises(ClusterAccessError) as first:
            await targets.connection(eks(target), session_name="req", source_identity="alice")
        assert first.value.reason == "AWSThrottled"
        assert 1.0 <= first.value.retry_after <= 2.0

        clock.advance(timedelta(seconds=0.5))
        with pytest.raises(ClusterAccessError) as during:
            await targets.connection(eks(target), session_name="other", source_identity="bob")
        assert during.value.reason == "AWSThrottled"
        assert during.value.retry_after == pytest.approx(first.value.retry_after - 0.5)

        clock.advance(timedelta(seconds=2))
        stub.add_client_error("assume_role", service_error_code="Throttling", http_status_code=400)
        with pytest.raises(ClusterAccessError) as second:
            await targets.connection(eks(target), session_name="req", source_identity="alice")
        assert 2.0 <= second.value.retry_after <= 4.0, "the delay grows with consecutive failures"
        stub.assert_no_pending_responses()


async def test_permanent_failures_are_not_remembered(
    base_session: boto3.Session, target: EKSTarget, clock: FakeClock, moto_url: str
) -> None:
    """Stubber for the denial (moto ignores trust policies); once the trust policy is fixed the next
    request goes through at once, with no backoff window to wait out."""
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={"prod-eu": DEV_SERVER},
        clock=clock,
    )
    targets = TargetClusters(own=OWN, eks=access, clock=clock)
    stub = Stubber(access.sts_client(REGION))
    stub.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
    with stub, pytest.raises(ClusterAccessError) as denied:
        await targets.connection(eks(target), session_name="req", source_identity="alice")
    assert denied.value.reason == "RoleAssumptionDenied" and not denied.value.retryable

    connection = await targets.connection(eks(target), session_name="req", source_identity="alice")
    assert connection.server == DEV_SERVER[0]


async def test_the_endpoint_is_read_once_per_cluster_until_invalidated(
    base_session: boto3.Session, target: EKSTarget, moto_url: str
) -> None:
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={"prod-eu": DEV_SERVER},
    )
    targets = TargetClusters(own=OWN, eks=access)
    await targets.connection(eks(target), session_name="req-1", source_identity="alice")

    # The cluster disappears: a cached endpoint still serves the next request...
    admin = access.assume(target, session_name="cleanup", source_identity="admin")
    access.eks_client(admin).delete_cluster(name="prod-eu")
    again = await targets.connection(eks(target), session_name="req-2", source_identity="alice")
    assert again.server == DEV_SERVER[0]

    # ...until the handler, having seen a 401 or a TLS failure, invalidates it.
    targets.invalidate(eks(target))
    with pytest.raises(ClusterAccessError) as caught:
        await targets.connection(eks(target), session_name="req-3", source_identity="alice")
    assert caught.value.reason == "EKSClusterNotFound"
    assert f"{ACCOUNT}:role/jitgrant-target" in caught.value.message


async def test_connections_act_as_the_session_they_were_opened_for(
    base_session: boto3.Session, target: EKSTarget, moto_url: str
) -> None:
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={"prod-eu": DEV_SERVER},
    )
    targets = TargetClusters(own=OWN, eks=access)
    first = await targets.connection(eks(target), session_name="req-1", source_identity="alice")
    second = await targets.connection(eks(target), session_name="req-2", source_identity="bob")
    first_token, second_token = first.token(), second.token()
    assert first_token is not None and second_token is not None
    assert first_token.value != second_token.value
    session = access.assume(target, session_name="req-1", source_identity="alice")
    assert first_token.value == access.eks_token(session, "prod-eu").value


async def test_after_a_long_sts_outage_the_next_try_is_at_most_the_cap_away_and_success_resets(
    moto_url: str, base_session: boto3.Session, target: EKSTarget, clock: FakeClock
) -> None:
    """An STS outage of many failures in a row: the quiet time stops growing at 30 s (it doubled to
    minutes, so grants waited 27-116 s after STS recovered), and one success starts it over."""
    create_eks_cluster(moto_url, target.cluster_name)
    eks_access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={target.cluster_name: DEV_SERVER},
        clock=clock,
    )
    targets = TargetClusters(own=OWN, eks=eks_access, clock=clock)
    with Stubber(eks_access.sts_client(REGION)) as stub:
        delays = []
        for _ in range(10):
            stub.add_client_error(
                "assume_role", service_error_code="ServiceUnavailable", http_status_code=503
            )
            with pytest.raises(ClusterAccessError) as failed:
                await targets.connection(eks(target), session_name="req", source_identity="alice")
            delays.append(failed.value.retry_after)
            clock.advance(timedelta(seconds=failed.value.retry_after))
        assert max(delays) <= 30.0, delays
        assert delays[-1] >= 15.0, "still backing off, at the cap"
        stub.assert_no_pending_responses()
    # STS is back: the first call after the quiet time goes through, and a new failure starts small.
    await targets.connection(eks(target), session_name="req", source_identity="alice")
    with Stubber(eks_access.sts_client(REGION)) as stub:
        stub.add_client_error("assume_role", service_error_code="ServiceUnavailable", http_status_code=503)
        with pytest.raises(ClusterAccessError) as again:
            await targets.connection(eks(target), session_name="fresh", source_identity="carol")
        assert 1.0 <= again.value.retry_after <= 2.0


async def test_same_named_clusters_in_two_regions_get_their_own_endpoint(
    moto_url: str, base_session: boto3.Session
) -> None:
    create_eks_cluster(moto_url, "prod", region=REGION)
    create_eks_cluster(moto_url, "prod", region="us-east-1")
    eu = EKSTarget(cluster_name="prod", region=REGION, role_arn=TARGET_ROLE)
    us = EKSTarget(cluster_name="prod", region="us-east-1", role_arn=TARGET_ROLE)
    assert eu.arn == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/prod" and us.arn != eu.arn
    moto = RegionEndpoints(sts=moto_url, eks=moto_url)
    access = EKSAccess(
        base_session=base_session,
        region_endpoints={REGION: moto, "us-east-1": moto},
        endpoint_overrides={
            eu.arn: ("http://127.0.0.1:1", None),
            us.arn: ("http://127.0.0.1:2", None),
            "prod": ("http://127.0.0.1:3", None),  # the name is only a fallback: the ARN wins
        },
    )
    targets = TargetClusters(own=OWN, eks=access)
    to_eu = await targets.connection(eks(eu), session_name="req", source_identity="alice")
    to_us = await targets.connection(eks(us), session_name="req", source_identity="alice")
    assert (to_eu.server, to_us.server) == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert (to_eu.name, to_us.name) == (eu.arn, us.arn)
