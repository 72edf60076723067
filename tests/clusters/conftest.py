"""AWS for the cluster tests: one moto server on 127.0.0.1 per session, reset before every test."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.models import EKSTarget

from ._aws import OPERATOR_KEY_ID, OPERATOR_SECRET, REGION, TARGET_ROLE, FakeClock


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> None:
    """Stop asyncio from creating a loop nobody closes.

    The looptime plugin asks the event loop policy for a loop even around sync tests; on Python
    3.11 that call creates a fresh loop when none was ever set, which is never closed and later
    fails some unrelated test with an "unclosed event loop" ResourceWarning. Marking the loop as
    explicitly unset makes that call raise instead (looptime expects and ignores that).
    """
    asyncio.set_event_loop(None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    # moto's request log goes through werkzeug's logger; keep it out of the test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_url(moto_server: str) -> str:
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    return moto_server


@pytest.fixture
def base_session() -> boto3.Session:
    """The operator's own credentials (what IRSA would provide)."""
    return boto3.Session(
        aws_access_key_id=OPERATOR_KEY_ID, aws_secret_access_key=OPERATOR_SECRET, region_name=REGION
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def eks_access(moto_url: str, base_session: boto3.Session, clock: FakeClock) -> EKSAccess:
    return EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        clock=clock,
    )


@pytest.fixture
def target() -> EKSTarget:
    return EKSTarget(cluster_name="prod-eu", region=REGION, role_arn=TARGET_ROLE)
