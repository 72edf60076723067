"""One place classifies errors: what a botocore or Kubernetes failure means for a request's status."""

from __future__ import annotations

import json
import socket

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from jitgrant.clusters.errors import (
    BACKOFF_CAP_SECONDS,
    ClusterAccessError,
    Conflict,
    Forbidden,
    NotFound,
    Refused,
    Unavailable,
    backoff_delay,
    classify_aws_error,
    classify_kubernetes_error,
)
from jitgrant.models import EKSTarget

TARGET = EKSTarget(
    cluster_name="prod-eu", region="eu-west-1", role_arn="arn:aws:iam::111122223333:role/jitgrant-target"
)


def client_error(code: str, operation: str, *, status: int = 400, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def test_backoff_grows_exponentially_within_jitter_bounds() -> None:
    for attempt in range(8):
        ceiling = min(BACKOFF_CAP_SECONDS, 2.0 * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1, "jitter: many failures must not retry in lockstep"


def test_backoff_is_capped_even_for_absurd_attempt_counts() -> None:
    assert backoff_delay(10_000) <= BACKOFF_CAP_SECONDS
    assert backoff_delay(-3) >= 1.0


def test_access_denied_on_assume_role_is_permanent_and_names_the_role_and_trust_policy() -> None:
    error = classify_aws_error(
        client_error(
            "AccessDenied", "AssumeRole", status=403, message="not authorized to perform sts:AssumeRole"
        ),
        target=TARGET,
    )
    assert error.reason == "RoleAssumptionDenied"
    assert not error.retryable and error.retry_after == 0
    assert TARGET.role_arn in error.message
    assert "trust policy" in error.message and "sts:SetSourceIdentity" in error.message


def test_access_denied_mentions_external_id_only_when_the_target_has_one() -> None:
    with_id = TARGET.model_copy(update={"external_id": "tenant-42"})
    assert (
        "externalId" in classify_aws_error(client_error("AccessDenied", "AssumeRole"), target=with_id).message
    )
    assert (
        "externalId"
        not in classify_aws_error(client_error("AccessDenied", "AssumeRole"), target=TARGET).message
    )


def test_access_denied_on_describe_cluster_names_the_missing_permission() -> None:
    error = classify_aws_error(
        client_error("AccessDeniedException", "DescribeCluster", status=403), target=TARGET
    )
    assert error.reason == "EKSAccessDenied" and not error.retryable
    assert "eks:DescribeCluster" in error.message


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 503),
        ("TooManyRequestsException", 429),
    ],
)
def test_throttling_is_retryable_with_backoff(code: str, status: int) -> None:
    error = classify_aws_error(client_error(code, "AssumeRole", status=status), target=TARGET, attempt=3)
    assert error.reason == "AWSThrottled"
    assert error.retryable and 8.0 <= error.retry_after <= 16.0


@pytest.mark.parametrize(
    ("code", "status"), [("InternalFailure", 500), ("ServiceUnavailable", 503), ("", 502)]
)
def test_server_side_failures_are_retryable(code: str, status: int) -> None:
    error = classify_aws_error(client_error(code, "DescribeCluster", status=status), target=TARGET)
    assert error.reason == "AWSUnavailable" and error.retryable and error.retry_after > 0


def test_missing_cluster_is_permanent_and_says_which_and_where() -> None:
    error = classify_aws_error(
        client_error("ResourceNotFoundException", "DescribeCluster", status=404), target=TARGET
    )
    assert error.reason == "EKSClusterNotFound" and not error.retryable
    assert "EKS cluster prod-eu not found in region eu-west-1" in error.message


def test_connection_failures_are_retryable() -> None:
    for failure in (
        EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://sts.eu-west-1.amazonaws.com"),
    ):
        error = classify_aws_error(failure, target=TARGET)
        assert error.reason == "AWSUnreachable" and error.retryable


def test_operator_without_credentials_points_at_irsa() -> None:
    error = classify_aws_error(NoCredentialsError(), target=TARGET)
    assert error.reason == "OperatorCredentialsMissing" and not error.retryable
    assert "IRSA" in error.message


def test_unknown_non_aws_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify_aws_error(KeyError("bug"), target=TARGET)


def test_an_already_classified_error_passes_through_unchanged() -> None:
    original = ClusterAccessError(reason="X", message="y", retryable=True, retry_after=3.0)
    assert classify_aws_error(original, target=TARGET) is original


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (401, "ClusterUnauthorized", False),
        (403, "ClusterForbidden", False),
        (429, "ClusterUnavailable", True),
        (503, "ClusterUnavailable", True),
        (422, "ClusterRequestRefused", False),
    ],
)
def test_kubernetes_errors_are_classified_by_status_code(status: int, reason: str, retryable: bool) -> None:
    error = classify_kubernetes_error(ApiException(status=status, reason="x"), cluster="prod-eu")
    assert (error.reason, error.retryable) == (reason, retryable)
    assert "prod-eu" in error.message


def test_the_client_s_status_specific_exceptions_are_classified_too() -> None:
    from kubernetes.client.exceptions import ForbiddenException, UnauthorizedException

    assert (
        classify_kubernetes_error(UnauthorizedException(status=401), cluster="c").reason
        == "ClusterUnauthorized"
    )
    assert classify_kubernetes_error(ForbiddenException(status=403), cluster="c").reason == "ClusterForbidden"


def test_tls_failures_are_retryable_after_reading_the_ca_again() -> None:
    error = classify_kubernetes_error(
        ApiException(status=0, reason="SSLError\ncertificate verify failed"), cluster="c"
    )
    assert error.reason == "ClusterTLSFailure" and error.retryable


def test_unreachable_api_server_is_retryable() -> None:
    cause = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    error = classify_kubernetes_error(MaxRetryError(None, "/api", cause), cluster="prod-eu")  # type: ignore[arg-type]
    assert error.reason == "ClusterUnreachable" and error.retryable and error.retry_after > 0


@pytest.mark.parametrize(
    ("status", "family"),
    [(404, NotFound), (409, Conflict), (403, Forbidden), (401, Refused), (422, Refused), (503, Unavailable)],
)
def test_each_status_maps_to_one_member_of_the_family(status: int, family: type[ClusterAccessError]) -> None:
    body = json.dumps(
        {"kind": "Status", "message": "what the server said", "details": {"kind": "namespaces"}}
    )
    error = classify_kubernetes_error(ApiException(status=status, reason="x"), cluster="c")
    assert type(error) is family
    exc = ApiException(status=status, reason="x")
    exc.body = body
    said = classify_kubernetes_error(exc, cluster="c")
    assert (said.status, said.server_message, said.details_kind) == (
        status,
        "what the server said",
        "namespaces",
    )
    assert type(said.with_retry_after(1.0)) is family  # a new delay keeps the class


async def test_the_port_raises_the_family_with_the_client_error_as_its_cause() -> None:
    """Nothing above clusters/ sees the Kubernetes client's or urllib3's exceptions."""
    from kubernetes.client import ApiClient, Configuration

    from jitgrant.clusters.own import ClusterApi

    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{_closed_port()}"
    configuration.retries = False
    api = ClusterApi(name="nowhere", client=ApiClient(configuration), request_timeout=(0.5, 0.5))
    try:
        with pytest.raises(Unavailable) as caught:
            await api.get_request("agents", "x")
    finally:
        api.close()
    assert caught.value.reason == "ClusterUnreachable" and caught.value.retryable
    assert type(caught.value.__cause__).__module__.startswith("urllib3")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
