"""The EKS bearer token, decoded and checked for the structure the EKS authenticator demands."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from jitgrant.clusters.eks import TOKEN_LIFETIME, AssumedSession, EKSAccess, EKSToken, RegionEndpoints
from jitgrant.models import EKSTarget

from ._aws import FakeClock


def decode(token: str) -> tuple[str, dict[str, list[str]], str]:
    """(host, query, scheme) of the presigned URL inside an EKS token."""
    prefix = "k8s-aws-v1."
    assert token.startswith(prefix)
    payload = token[len(prefix) :]
    assert "=" not in payload, "EKS tokens carry base64url without padding"
    url = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    parts = urlsplit(url)
    return parts.netloc, parse_qs(parts.query, strict_parsing=True), parts.scheme


def check_structure(token: EKSToken, *, host: str, scheme: str, region: str) -> dict[str, list[str]]:
    actual_host, query, actual_scheme = decode(token.value)
    assert (actual_host, actual_scheme) == (host, scheme)
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["Version"] == ["2011-06-15"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "host" in query["X-Amz-SignedHeaders"][0].split(";")
    assert int(query["X-Amz-Expires"][0]) <= 900
    assert query["X-Amz-Expires"] == ["60"]
    _key, _date, scope_region, service, terminal = query["X-Amz-Credential"][0].split("/")
    assert (scope_region, service, terminal) == (region, "sts", "aws4_request")
    assert query["X-Amz-Signature"][0]
    return query


def test_token_for_a_real_cluster_names_the_real_regional_sts_host(
    eks_access: EKSAccess, target: EKSTarget
) -> None:
    """API calls go to moto, but by default the token is signed for sts.<region>.amazonaws.com."""
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    token = eks_access.eks_token(session, "prod-eu")
    query = check_structure(token, host="sts.eu-west-1.amazonaws.com", scheme="https", region="eu-west-1")
    assert query["X-Amz-Security-Token"] == [session.session_token]
    assert query["X-Amz-Credential"][0].startswith(session.access_key_id + "/")


def test_token_sts_endpoint_is_configurable_separately(
    moto_url: str, base_session: boto3.Session, target: EKSTarget
) -> None:
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url, token_sts=moto_url),
    )
    session = access.assume(target, session_name="req", source_identity="alice")
    token = access.eks_token(session, "prod-eu")
    check_structure(token, host=urlsplit(moto_url).netloc, scheme="http", region="eu-west-1")


def test_region_endpoints_choose_the_region_of_the_cluster(
    moto_url: str, base_session: boto3.Session
) -> None:
    access = EKSAccess(
        base_session=base_session,
        region_endpoints={"us-east-2": RegionEndpoints(sts=moto_url, eks=moto_url)},
        default_endpoints=RegionEndpoints(sts="http://127.0.0.1:9"),
    )
    target = EKSTarget(cluster_name="ohio", region="us-east-2", role_arn="arn:aws:iam::111122223333:role/t")
    session = access.assume(target, session_name="req", source_identity="alice")
    check_structure(
        access.eks_token(session, "ohio"),
        host="sts.us-east-2.amazonaws.com",
        scheme="https",
        region="us-east-2",
    )


def session_expiring_in(delta: timedelta) -> AssumedSession:
    """Signing needs no network: a session made by hand lets the test pick the credentials' expiry."""
    return AssumedSession(
        role_arn="arn:aws:iam::111122223333:role/jitgrant-target",
        region="eu-west-1",
        session_name="req",
        source_identity="alice",
        assumed_role_arn="arn:aws:sts::111122223333:assumed-role/jitgrant-target/req",
        access_key_id="ASIAEXAMPLEKEY000001",
        secret_access_key="secret",
        session_token="session-token",
        expires_at=datetime.now(UTC) + delta,
    )


def test_a_token_lives_fifteen_minutes_after_signing_whatever_its_url_says(
    eks_access: EKSAccess,
) -> None:
    token = eks_access.eks_token(session_expiring_in(timedelta(hours=1)), "prod-eu")
    assert abs(token.signed_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert token.expires_at == token.signed_at + TOKEN_LIFETIME
    assert decode(token.value)[1]["X-Amz-Expires"] == ["60"]


def test_a_token_dies_with_the_credentials_that_signed_it(eks_access: EKSAccess) -> None:
    session = session_expiring_in(timedelta(minutes=4))
    token = eks_access.eks_token(session, "prod-eu")
    assert token.expires_at == session.expires_at


def test_tokens_are_cached_and_refreshed_before_expiry(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    first = eks_access.eks_token(session, "prod-eu")
    assert eks_access.eks_token(session, "prod-eu") is first

    clock.advance(first.expires_at - clock.now - timedelta(seconds=59))
    assert eks_access.eks_token(session, "prod-eu") is not first


def test_tokens_are_per_cluster(eks_access: EKSAccess, target: EKSTarget) -> None:
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    first, second = eks_access.eks_token(session, "prod-eu"), eks_access.eks_token(session, "prod-us")
    assert first.value != second.value


def test_token_never_shows_in_repr(eks_access: EKSAccess, target: EKSTarget) -> None:
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    token = eks_access.eks_token(session, "prod-eu")
    assert token.value not in repr(token)
    assert token.value[len("k8s-aws-v1.") :][:20] not in repr(token)


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1"])
def test_other_partitions_sign_for_their_own_sts_host(base_session: boto3.Session, region: str) -> None:
    access = EKSAccess(base_session=base_session)
    expected = (
        "sts.cn-north-1.amazonaws.com.cn" if region.startswith("cn-") else f"sts.{region}.amazonaws.com"
    )
    assert urlsplit(access.token_sts_url(region)).netloc == expected
