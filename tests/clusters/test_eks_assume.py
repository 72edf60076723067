"""Assuming the target role: STS through moto on 127.0.0.1, Stubber where moto ignores a parameter."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from jitgrant.clusters.eks import SESSION_DURATION_SECONDS, EKSAccess, RegionEndpoints, sts_name
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.models import EKSTarget

from ._aws import ACCOUNT, REGION, TARGET_ROLE, FakeClock


def test_assumed_credentials_work_and_name_the_role_and_session(
    eks_access: EKSAccess, target: EKSTarget, moto_url: str
) -> None:
    session = eks_access.assume(target, session_name="payments/restart-42", source_identity="alice")

    assert (
        session.assumed_role_arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/jitgrant-target/payments-restart-42"
    )
    identity = boto3.client(
        "sts",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=session.access_key_id,
        aws_secret_access_key=session.secret_access_key,
        aws_session_token=session.session_token,
    ).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/jitgrant-target/payments-restart-42"
    assert identity["Account"] == ACCOUNT
    # 900 s is the shortest session STS grants; moto honours DurationSeconds in the expiry it returns.
    lifetime = session.expires_at - datetime.now(UTC)
    assert (
        timedelta(seconds=SESSION_DURATION_SECONDS - 60)
        < lifetime
        <= timedelta(seconds=SESSION_DURATION_SECONDS)
    )


def test_secrets_never_show_in_repr(eks_access: EKSAccess, target: EKSTarget) -> None:
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    text = repr(session) + str(session)
    assert session.secret_access_key not in text
    assert session.session_token not in text
    assert session.access_key_id not in text


def test_credentials_are_cached_until_the_margin_before_expiry(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    first = eks_access.assume(target, session_name="req-1", source_identity="alice")
    again = eks_access.assume(target, session_name="req-1", source_identity="alice")
    assert again.access_key_id == first.access_key_id, "moto hands out a new key per AssumeRole"

    clock.advance(first.expires_at - clock.now - timedelta(minutes=5) + timedelta(seconds=1))
    renewed = eks_access.assume(target, session_name="req-1", source_identity="alice")
    assert renewed.access_key_id != first.access_key_id


def test_sessions_for_different_requests_are_never_shared(eks_access: EKSAccess, target: EKSTarget) -> None:
    first = eks_access.assume(target, session_name="req-1", source_identity="alice")
    other_request = eks_access.assume(target, session_name="req-2", source_identity="alice")
    other_requester = eks_access.assume(target, session_name="req-1", source_identity="bob")
    assert len({first.access_key_id, other_request.access_key_id, other_requester.access_key_id}) == 3
    assert other_request.assumed_role_arn.endswith("/req-2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("payments/restart-checkout", "payments-restart-checkout"),
        ("system:serviceaccount:agents:oncall-bot", "system-serviceaccount-agents-oncall-bot"),
        ("alice@example.com", "alice@example.com"),
        ("a", "a_"),
        ("héllo wörld", "h-llo-w-rld"),
    ],
)
def test_sts_names_are_sanitized_to_the_allowed_charset(text: str, expected: str) -> None:
    assert sts_name(text) == expected


def test_long_sts_names_are_cut_to_64_and_stay_distinct() -> None:
    first = sts_name("payments/" + "x" * 80 + "-1")
    second = sts_name("payments/" + "x" * 80 + "-2")
    assert len(first) == len(second) == 64
    assert first != second
    assert first.startswith("payments-xxx")


def stubbed(access: EKSAccess) -> Stubber:
    return Stubber(access.sts_client(REGION))


def assume_role_response(clock: FakeClock) -> dict[str, object]:
    return {
        "Credentials": {
            "AccessKeyId": "ASIASTUBBEDKEY000001",
            "SecretAccessKey": "stubbed-secret",
            "SessionToken": "stubbed-session-token",
            "Expiration": clock.now + timedelta(seconds=900),
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROASTUBBED:req",
            "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/jitgrant-target/req",
        },
        "SourceIdentity": "system-serviceaccount-agents-oncall-bot",
    }


def test_source_identity_external_id_and_duration_are_sent(eks_access: EKSAccess, clock: FakeClock) -> None:
    """Stubber, because moto accepts and ignores SourceIdentity and ExternalId (it has no trust policies)."""
    target = EKSTarget(cluster_name="prod-eu", region=REGION, role_arn=TARGET_ROLE, external_id="tenant-42")
    with stubbed(eks_access) as stub:
        stub.add_response(
            "assume_role",
            assume_role_response(clock),
            expected_params={
                "RoleArn": TARGET_ROLE,
                "RoleSessionName": "payments-restart-42",
                "SourceIdentity": "system-serviceaccount-agents-oncall-bot",
                "ExternalId": "tenant-42",
                "DurationSeconds": 900,
            },
        )
        session = eks_access.assume(
            target,
            session_name="payments/restart-42",
            source_identity="system:serviceaccount:agents:oncall-bot",
        )
        stub.assert_no_pending_responses()
    assert session.source_identity == "system-serviceaccount-agents-oncall-bot"


def test_no_external_id_is_sent_when_the_target_has_none(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    """Stubber: checks the exact parameters, which moto cannot show."""
    with stubbed(eks_access) as stub:
        stub.add_response(
            "assume_role",
            assume_role_response(clock),
            expected_params={
                "RoleArn": TARGET_ROLE,
                "RoleSessionName": "req",
                "SourceIdentity": "alice",
                "DurationSeconds": 900,
            },
        )
        eks_access.assume(target, session_name="req", source_identity="alice")


def test_access_denied_gives_a_permanent_reason_naming_the_role(
    eks_access: EKSAccess, target: EKSTarget
) -> None:
    """Stubber: moto never denies AssumeRole (it ignores trust policies)."""
    with stubbed(eks_access) as stub:
        stub.add_client_error(
            "assume_role",
            service_error_code="AccessDenied",
            service_message=f"User: arn:aws:sts::{ACCOUNT}:assumed-role/jitgrant-operator/x "
            f"is not authorized to perform: sts:SetSourceIdentity on resource: {TARGET_ROLE}",
            http_status_code=403,
        )
        with pytest.raises(ClusterAccessError) as caught:
            eks_access.assume(target, session_name="req", source_identity="alice")
    assert caught.value.reason == "RoleAssumptionDenied"
    assert not caught.value.retryable
    assert TARGET_ROLE in caught.value.message and "trust policy" in caught.value.message


def test_throttling_is_retryable_and_nothing_is_cached(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    """Stubber: moto does not throttle. After the throttled call the next one goes to STS again."""
    with stubbed(eks_access) as stub:
        stub.add_client_error("assume_role", service_error_code="Throttling", http_status_code=400)
        stub.add_response("assume_role", assume_role_response(clock))
        with pytest.raises(ClusterAccessError) as caught:
            eks_access.assume(target, session_name="req", source_identity="alice")
        assert (
            caught.value.reason == "AWSThrottled" and caught.value.retryable and caught.value.retry_after > 0
        )
        session = eks_access.assume(target, session_name="req", source_identity="alice")
        stub.assert_no_pending_responses()
    assert session.access_key_id == "ASIASTUBBEDKEY000001"


def test_unreachable_sts_is_retryable(base_session: boto3.Session, target: EKSTarget) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=f"http://127.0.0.1:{port}"),
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    with pytest.raises(ClusterAccessError) as caught:
        access.assume(target, session_name="req", source_identity="alice")
    assert caught.value.reason == "AWSUnreachable" and caught.value.retryable
