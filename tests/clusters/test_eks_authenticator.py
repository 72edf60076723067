"""The EKS token authenticator of the embedded cluster, against moto's STS on 127.0.0.1.

moto cannot answer a presigned GetCallerIdentity URL itself (its server routes by the Authorization
header, which a presigned GET lacks, and identifies callers only from that header), so the URL goes
to `PresignedSTS`, which checks it as STS does (age, session token, SigV4 signature over the
`x-k8s-aws-id` header) and asks moto who the caller is.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import boto3
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest

from jitgrant.clusters.eks import AssumedSession, EKSAccess, RegionEndpoints, presign_eks_token
from jitgrant.models import EKSTarget
from jitgrant_testing.eks_authenticator import (
    TokenRejected,
    canonical_principal,
    map_principal,
    parse_token,
    verify_eks_token,
)
from jitgrant_testing.presigned_sts import PresignedSTS

from ._aws import ACCOUNT, TARGET_ROLE, FakeClock

MAPPING = {TARGET_ROLE: ("jitgrant:{{SessionName}}", ["jitgrant:operators"])}


@pytest.fixture
async def sts(moto_url: str) -> AsyncIterator[PresignedSTS]:
    front = PresignedSTS(moto_url=moto_url)
    await front.start()
    yield front
    await front.stop()


@pytest.fixture
def session(eks_access: EKSAccess, target: EKSTarget) -> AssumedSession:
    return eks_access.assume(target, session_name="payments/restart-42", source_identity="alice")


def token_from(url: str) -> str:
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def presigned(
    session: AssumedSession,
    *,
    sts_url: str = "https://sts.eu-west-1.amazonaws.com",
    headers: dict[str, str] | None = None,
    expires: int = 60,
    extra: dict[str, str] | None = None,
) -> str:
    """A hand-made presigned URL, for the shapes our own signer never produces."""
    query = {"Action": "GetCallerIdentity", "Version": "2011-06-15", **(extra or {})}
    request = AWSRequest(method="GET", url=f"{sts_url}/?{urlencode(query)}", headers=headers or {})
    SigV4QueryAuth(session.botocore_credentials(), "sts", "eu-west-1", expires=expires).add_auth(request)
    return str(request.url)


async def test_a_token_for_this_cluster_maps_to_the_session_user(
    eks_access: EKSAccess, session: AssumedSession, sts: PresignedSTS
) -> None:
    token = eks_access.eks_token(session, "prod-eu").value
    identity = await verify_eks_token(
        token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING
    )
    assert identity == ("jitgrant:payments-restart-42", ("jitgrant:operators",))


async def test_a_token_signed_for_the_dev_sts_endpoint_is_accepted_too(
    moto_url: str, base_session: boto3.Session, target: EKSTarget, sts: PresignedSTS
) -> None:
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url, token_sts=sts.url),
    )
    session = access.assume(target, session_name="req", source_identity="alice")
    identity = await verify_eks_token(
        access.eks_token(session, "prod-eu").value,
        cluster_name="prod-eu",
        sts_endpoint_url=sts.url,
        role_mapping=MAPPING,
    )
    assert identity == ("jitgrant:req", ("jitgrant:operators",))


async def test_a_token_for_another_cluster_is_refused_by_the_signature(
    eks_access: EKSAccess, session: AssumedSession, sts: PresignedSTS
) -> None:
    """The URL looks fine; only the signature over x-k8s-aws-id tells the clusters apart."""
    token = eks_access.eks_token(session, "prod-us").value
    assert (
        await verify_eks_token(token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING)
        is None
    )


async def test_an_old_token_is_refused(
    eks_access: EKSAccess, session: AssumedSession, sts: PresignedSTS, clock: FakeClock
) -> None:
    token = eks_access.eks_token(session, "prod-eu").value
    clock.advance(timedelta(minutes=15, seconds=5))
    later = await verify_eks_token(
        token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING, clock=clock
    )
    assert later is None


async def test_sts_itself_refuses_an_old_url(
    eks_access: EKSAccess, session: AssumedSession, moto_url: str
) -> None:
    clock = FakeClock()
    clock.advance(timedelta(minutes=16))
    front = PresignedSTS(moto_url=moto_url, clock=clock)
    await front.start()
    try:
        token = eks_access.eks_token(session, "prod-eu").value
        assert (
            await verify_eks_token(
                token, cluster_name="prod-eu", sts_endpoint_url=front.url, role_mapping=MAPPING
            )
            is None
        )
    finally:
        await front.stop()


MUTATIONS = {
    # mutation -> why the structural check refuses it (None: only STS can tell)
    "no-cluster-header": "does not cover x-k8s-aws-id",
    "long-expiry": "X-Amz-Expires 3600",
    "foreign-host": "https://sts.attacker.example.com is not an STS endpoint",
    "http-real-host": "http://sts.eu-west-1.amazonaws.com is not an STS endpoint",
    "extra-param": "unexpected query parameters ['callback']",
    "other-action": "action is not GetCallerIdentity",
    "bad-prefix": "prefix",
    "tampered-signature": None,
}


def mutated_token(session: AssumedSession, mutation: str) -> str:
    header = {"x-k8s-aws-id": "prod-eu"}
    if mutation == "no-cluster-header":
        token = token_from(presigned(session))
    elif mutation == "long-expiry":
        token = token_from(presigned(session, headers=header, expires=3600))
    elif mutation == "foreign-host":
        token = token_from(presigned(session, headers=header, sts_url="https://sts.attacker.example.com"))
    elif mutation == "http-real-host":
        token = token_from(presigned(session, headers=header, sts_url="http://sts.eu-west-1.amazonaws.com"))
    elif mutation == "extra-param":
        token = token_from(presigned(session, headers=header, extra={"Callback": "https://x.example"}))
    elif mutation == "other-action":
        token = token_from(presigned(session, headers=header).replace("GetCallerIdentity", "AssumeRole"))
    elif mutation == "bad-prefix":
        token = "k8s-aws-v2." + token_from(presigned(session, headers=header))[len("k8s-aws-v1.") :]
    else:
        url = presigned(session, headers=header)
        token = token_from(url[:-4] + ("0000" if not url.endswith("0000") else "1111"))
    return token


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
async def test_malformed_tokens_are_refused(
    session: AssumedSession, sts: PresignedSTS, mutation: str
) -> None:
    token = mutated_token(session, mutation)
    assert (
        await verify_eks_token(token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING)
        is None
    )


@pytest.mark.parametrize("mutation", sorted(m for m, why in MUTATIONS.items() if why is not None))
def test_malformed_tokens_are_refused_for_the_right_reason(session: AssumedSession, mutation: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        parse_token(
            mutated_token(session, mutation), sts_endpoint_url="http://127.0.0.1:1", now=datetime.now(UTC)
        )
    assert str(MUTATIONS[mutation]) in str(caught.value)


async def test_a_well_formed_hand_made_token_is_accepted(session: AssumedSession, sts: PresignedSTS) -> None:
    """The control for the test above: the same helper without a mutation passes."""
    token = token_from(presigned(session, headers={"x-k8s-aws-id": "prod-eu"}))
    identity = await verify_eks_token(
        token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING
    )
    assert identity is not None


async def test_an_unmapped_role_is_nobody(
    eks_access: EKSAccess, session: AssumedSession, sts: PresignedSTS
) -> None:
    token = eks_access.eks_token(session, "prod-eu").value
    other = {f"arn:aws:iam::{ACCOUNT}:role/someone-else": ("x", ["y"])}
    assert (
        await verify_eks_token(token, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=other)
        is None
    )


async def test_a_token_from_credentials_sts_never_issued_is_refused(sts: PresignedSTS) -> None:
    from botocore.credentials import Credentials

    forged = presign_eks_token(
        credentials=Credentials("ASIAFORGEDKEY0000001", "guess", "guess"),
        region="eu-west-1",
        cluster_name="prod-eu",
        sts_url="https://sts.eu-west-1.amazonaws.com",
    )
    assert (
        await verify_eks_token(
            forged.value, cluster_name="prod-eu", sts_endpoint_url=sts.url, role_mapping=MAPPING
        )
        is None
    )


def test_assumed_role_arns_map_to_the_role_without_its_path() -> None:
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/req-1"
    assert canonical_principal(arn) == (f"arn:aws:iam::{ACCOUNT}:role/deployer", "req-1")
    mapping = {
        f"arn:aws:iam::{ACCOUNT}:role/team/deployer": ("deployer:{{AccountID}}:{{SessionName}}", ["g"])
    }
    assert map_principal(arn, mapping) == (f"deployer:{ACCOUNT}:req-1", ("g",))


def test_session_name_templates_follow_aws_auth() -> None:
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/alice@example.com"
    mapping = {f"arn:aws:iam::{ACCOUNT}:role/deployer": ("{{SessionName}}|{{SessionNameRaw}}", [])}
    assert map_principal(arn, mapping) == ("alice-example.com|alice@example.com", ())


def test_iam_users_map_by_their_own_arn() -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:user/ci"
    assert map_principal(arn, {arn: ("ci", ["ci"])}) == ("ci", ("ci",))
    assert map_principal(f"arn:aws:iam::{ACCOUNT}:user/other", {arn: ("ci", [])}) is None
