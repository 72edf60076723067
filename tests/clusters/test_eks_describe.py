"""eks:DescribeCluster: endpoint and CA, moto where it is faithful, Stubber where its data is not."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jitgrant.clusters.eks import EKSAccess, RegionEndpoints
from jitgrant.clusters.errors import ClusterAccessError
from jitgrant.models import EKSTarget

from ._aws import REGION, FakeClock, create_eks_cluster


def self_signed_ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_missing_cluster_is_a_clear_permanent_error(eks_access: EKSAccess, target: EKSTarget) -> None:
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    with pytest.raises(ClusterAccessError) as caught:
        eks_access.describe(target, session)
    assert caught.value.reason == "EKSClusterNotFound" and not caught.value.retryable
    assert "EKS cluster prod-eu not found in region eu-west-1" in caught.value.message


def test_cluster_in_another_account_is_not_found(
    eks_access: EKSAccess, target: EKSTarget, moto_url: str
) -> None:
    """moto keeps one backend per account, as AWS does: the role's account is where the cluster must be."""
    create_eks_cluster(moto_url, "prod-eu", account="444455556666")
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    with pytest.raises(ClusterAccessError) as caught:
        eks_access.describe(target, session)
    assert caught.value.reason == "EKSClusterNotFound"


def test_moto_ca_data_is_not_pem_and_is_refused(
    eks_access: EKSAccess, target: EKSTarget, moto_url: str
) -> None:
    """Checked: moto 5.2's certificateAuthority.data is base64 of random bytes, not of a PEM certificate."""
    create_eks_cluster(moto_url, "prod-eu")
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    raw = eks_access.eks_client(session).describe_cluster(name="prod-eu")["cluster"]["certificateAuthority"][
        "data"
    ]
    assert b"-----BEGIN CERTIFICATE-----" not in base64.b64decode(raw)

    with pytest.raises(ClusterAccessError) as caught:
        eks_access.describe(target, session)
    assert caught.value.reason == "InvalidClusterCA" and not caught.value.retryable


def test_endpoint_override_replaces_what_moto_returns_but_describe_still_runs(
    moto_url: str, base_session: boto3.Session, target: EKSTarget
) -> None:
    create_eks_cluster(moto_url, "prod-eu")
    access = EKSAccess(
        base_session=base_session,
        default_endpoints=RegionEndpoints(sts=moto_url, eks=moto_url),
        endpoint_overrides={
            "prod-eu": ("http://127.0.0.1:18443", None),
            "absent": ("http://127.0.0.1:1", None),
        },
    )
    session = access.assume(target, session_name="req", source_identity="alice")
    endpoint = access.describe(target, session)
    assert (endpoint.server, endpoint.ca_pem) == ("http://127.0.0.1:18443", None)

    absent = target.model_copy(update={"cluster_name": "absent"})
    with pytest.raises(ClusterAccessError) as caught:
        access.describe(absent, access.assume(absent, session_name="req", source_identity="alice"))
    assert caught.value.reason == "EKSClusterNotFound", "an override must not hide a missing cluster"


def describe_response(*, status: str, endpoint: str | None, ca_data: str) -> dict[str, object]:
    cluster: dict[str, object] = {
        "name": "prod-eu",
        "arn": "arn:aws:eks:eu-west-1:111122223333:cluster/prod-eu",
        "status": status,
        "certificateAuthority": {"data": ca_data},
    }
    if endpoint is not None:
        cluster["endpoint"] = endpoint
    return {"cluster": cluster}


def test_a_real_pem_ca_is_returned_as_pem(eks_access: EKSAccess, target: EKSTarget) -> None:
    """Stubber: moto's CA data is not a certificate, so the happy path with a real CA needs a stub."""
    pem = self_signed_ca_pem()
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    with Stubber(eks_access.eks_client(session)) as stub:
        stub.add_response(
            "describe_cluster",
            describe_response(
                status="ACTIVE",
                endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com",
                ca_data=base64.b64encode(pem).decode(),
            ),
            expected_params={"name": "prod-eu"},
        )
        endpoint = eks_access.describe(target, session)
    assert endpoint.server == "https://ABC.gr7.eu-west-1.eks.amazonaws.com"
    assert endpoint.ca_pem == pem
    assert "BEGIN CERTIFICATE" not in repr(endpoint)


@pytest.mark.parametrize(
    ("status", "endpoint", "reason", "retryable"),
    [
        ("CREATING", None, "EKSClusterNotReady", True),
        ("DELETING", "https://x.eks.amazonaws.com", "EKSClusterUnusable", False),
        ("FAILED", None, "EKSClusterUnusable", False),
    ],
)
def test_cluster_states_without_a_usable_api_server(
    eks_access: EKSAccess, target: EKSTarget, status: str, endpoint: str | None, reason: str, retryable: bool
) -> None:
    """Stubber: moto's clusters are ACTIVE from the moment they are created."""
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    ca = base64.b64encode(self_signed_ca_pem()).decode()
    with Stubber(eks_access.eks_client(session)) as stub:
        stub.add_response("describe_cluster", describe_response(status=status, endpoint=endpoint, ca_data=ca))
        with pytest.raises(ClusterAccessError) as caught:
            eks_access.describe(target, session)
    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert status in caught.value.message


def test_describe_denied_names_the_permission(
    eks_access: EKSAccess, target: EKSTarget, clock: FakeClock
) -> None:
    """Stubber: moto does not evaluate IAM policies by default."""
    session = eks_access.assume(target, session_name="req", source_identity="alice")
    with Stubber(eks_access.eks_client(session)) as stub:
        stub.add_client_error(
            "describe_cluster", service_error_code="AccessDeniedException", http_status_code=403
        )
        with pytest.raises(ClusterAccessError) as caught:
            eks_access.describe(target, session)
    assert caught.value.reason == "EKSAccessDenied" and "eks:DescribeCluster" in caught.value.message
    assert REGION in caught.value.message
