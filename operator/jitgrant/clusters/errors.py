"""The one error family `clusters/` raises, and the one place that decides what a failure means.

Every AWS or Kubernetes failure on the way to a cluster becomes a `ClusterAccessError`, keyed by what
the caller does about it (kopf's `_cogs/clients/errors.py` and lightkube's exceptions are the model):

- `NotFound` (404): the object, or the namespace it was to be created in, is not there;
- `Conflict` (409): it already exists, or the resourceVersion we wrote against is stale;
- `Refused` (400/401/403/422, and AWS refusals): asking again will not help; `Forbidden` for 403;
- `Unavailable` (429, 5xx, no answer, TLS): `retryable`, with `retry_after` as the delay.

Two more leave the cluster ports and are not `ClusterAccessError`s, since no cluster refused anything
and nothing may write status about them: `NotLeader` (fencing refused a write this replica may no
longer make) and `ForeignObjectError` (a grant's name is taken by an object not proven ours).

Each carries a machine-readable `reason` for the request's status and a `message` a platform engineer
can act on; the library's exception is chained as `__cause__`, so nothing above `clusters/` imports
the Kubernetes client or urllib3. Nothing here ever puts a credential, a token or a presigned URL into
a message.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, TypedDict

import urllib3
from kubernetes.client.exceptions import ApiException

from jitgrant.models import EKSTarget
from jitgrant.models.vocabulary import Reason

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

# Error codes AWS uses for "slow down"; the STS, EKS and generic spellings differ.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
# Error codes that mean the service had a problem, not that we asked wrongly.
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "ServerException",
        "IDPCommunicationError",
    }
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# Temporary credentials of the operator itself ran out between refreshes: boto refreshes them.
EXPIRED_CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
# How long a request waiting on a target cluster (to grant, or to remove an ended grant) waits at
# most between attempts: a removal is overdue all that time, and a recovered cluster (an STS outage
# over) must not wait out minutes of a backoff that kept doubling while it was down.
TARGET_RETRY_CAP_SECONDS = 30.0


class ClusterAccessError(Exception):
    """Reaching a cluster failed; `reason` goes into status, `message` tells a human why.

    The base of the family: raised as is for AWS failures that fit no narrower class.
    """

    def __init__(
        self,
        *,
        reason: str,
        message: str,
        retryable: bool,
        retry_after: float = 0.0,
        status: int = 0,
        server_message: str = "",
        details_kind: str = "",
    ) -> None:
        super().__init__(message)
        self._reason = reason
        self._message = message
        self._retryable = retryable
        self._retry_after = retry_after if retryable else 0.0
        self.status = status  # the HTTP status the server answered, 0 when there was no answer
        self.server_message = server_message  # what the API server said, for refusals shown to users
        self.details_kind = details_kind  # the Status `details.kind`: e.g. "namespaces" on a 404

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def message(self) -> str:
        return self._message

    @property
    def retryable(self) -> bool:
        return self._retryable

    @property
    def retry_after(self) -> float:
        """Seconds to wait before trying again; 0 for permanent errors."""
        return self._retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self._reason!r}, message={self._message!r}, "
            f"retryable={self._retryable!r}, retry_after={self._retry_after!r})"
        )

    def with_retry_after(self, retry_after: float) -> ClusterAccessError:
        """The same error with a different delay (for a caller that tracks attempts itself)."""
        return type(self)(
            reason=self._reason,
            message=self._message,
            retryable=self._retryable,
            retry_after=retry_after,
            status=self.status,
            server_message=self.server_message,
            details_kind=self.details_kind,
        )


class NotFound(ClusterAccessError):
    """404: the object is not there (or, on a create, the namespace it was meant for)."""


class Conflict(ClusterAccessError):
    """409: the object already exists, or what we wrote against has changed since we read it."""


class Refused(ClusterAccessError):
    """The cluster understood and said no (400, 401, 422, AWS refusals): asking again will not help."""


class Forbidden(Refused):
    """403: the operator's identity there lacks the permission (e.g. `bind` on a ClusterRole)."""


class Unavailable(ClusterAccessError):
    """Throttled, failing or unreachable: try again after `retry_after`."""


class NotLeader(Exception):
    """A write was attempted by a replica that does not hold the Lease; nothing was written. The pass
    ends there (the leader decides again), so no handler of cluster failures may see it."""


class ForeignObjectError(Exception):
    """An object with a name of the grant exists and the operator cannot prove it made it."""


class _Answer(TypedDict):
    """What the API server said, carried on every error it answered."""

    status: int
    server_message: str
    details_kind: str


def backoff_delay(
    attempt: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS
) -> float:
    """Exponential backoff with jitter: somewhere in [d/2, d] where d = min(cap, base * 2**attempt).

    Half the delay is fixed so a retry never comes back at once; the other half is random so many
    requests failing together (one throttled account, one cluster down) do not retry in lockstep.
    `attempt` counts from 0 for the first retry.
    """
    ceiling = min(cap, base * 2.0 ** max(0, min(attempt, 62)))
    # Jitter spreads retries; it protects nothing secret, so the standard generator is right.
    return ceiling / 2.0 + random.uniform(0.0, ceiling / 2.0)  # noqa: S311


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _aws_message(error: ClientError) -> str:
    # AWS error messages name resources and principals, never credentials.
    return str(error.response.get("Error", {}).get("Message", "")).strip()


def classify_aws_error(error: Exception, *, target: EKSTarget, attempt: int = 0) -> ClusterAccessError:
    """Turn a boto3/botocore failure on the way to `target` into a ClusterAccessError.

    `attempt` is how many times in a row this target has failed before (0 for the first failure);
    it only sets `retry_after` for retryable errors.
    """
    # botocore comes with the `aws` extra; an AWS error can only reach here when it is installed.
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(error, ClusterAccessError):
        return error
    delay = backoff_delay(attempt)
    where = f"EKS cluster {target.cluster_name} in {target.region}"
    if isinstance(error, ClientError):
        code, status = _code(error), _status(error)
        operation = error.operation_name
        detail = _aws_message(error)
        if code in THROTTLING_CODES or status == 429:
            return Unavailable(
                reason=Reason.AWS_THROTTLED,
                message=f"AWS throttled {operation} for {where} ({code}); will retry",
                retryable=True,
                retry_after=delay,
            )
        if code in UNAVAILABLE_CODES or status >= 500:
            return Unavailable(
                reason=Reason.AWS_UNAVAILABLE,
                message=f"AWS failed {operation} for {where} ({code or status}); will retry",
                retryable=True,
                retry_after=delay,
            )
        if code in EXPIRED_CREDENTIAL_CODES:
            return Unavailable(
                reason=Reason.AWS_CREDENTIALS_EXPIRED,
                message=f"the operator's own AWS credentials had expired during {operation} for {where}; "
                f"will retry with refreshed credentials",
                retryable=True,
                retry_after=delay,
            )
        if code in ACCESS_DENIED_CODES and operation == "AssumeRole":
            return Refused(
                reason=Reason.ROLE_ASSUMPTION_DENIED,
                message=f"the operator may not assume role {target.role_arn} for {where}: check the role's "
                "trust policy allows the operator's IAM role, sts:AssumeRole and sts:SetSourceIdentity"
                + (", and that the externalId matches" if target.external_id else "")
                + (f" (AWS said: {detail})" if detail else ""),
                retryable=False,
            )
        if code in ACCESS_DENIED_CODES:
            return Refused(
                reason=Reason.EKS_ACCESS_DENIED,
                message=f"role {target.role_arn} may not call {operation} on {where}: grant it "
                f"eks:{operation} on the cluster" + (f" (AWS said: {detail})" if detail else ""),
                retryable=False,
            )
        if code == "ResourceNotFoundException":
            return Refused(
                reason=Reason.EKS_CLUSTER_NOT_FOUND,
                message=f"EKS cluster {target.cluster_name} not found in region {target.region} "
                f"(as seen by role {target.role_arn})",
                retryable=False,
            )
        if code == "RegionDisabledException":
            return Refused(
                reason=Reason.STS_REGION_DISABLED,
                message=f"STS is not activated in {target.region} for the account of {target.role_arn}",
                retryable=False,
            )
        return Refused(
            reason=Reason.AWS_REQUEST_REFUSED,
            message=f"AWS refused {operation} for {where}: {code or status}"
            + (f": {detail}" if detail else ""),
            retryable=False,
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return Refused(
            reason=Reason.OPERATOR_CREDENTIALS_MISSING,
            message=f"the operator has no usable AWS credentials of its own to reach {where}: check its "
            "ServiceAccount's eks.amazonaws.com/role-arn annotation (IRSA) or Pod Identity association",
            retryable=False,
        )
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return Unavailable(
            reason=Reason.AWS_UNREACHABLE,
            message=f"could not reach AWS for {where} ({type(error).__name__}); will retry",
            retryable=True,
            retry_after=delay,
        )
    if isinstance(error, BotoCoreError):
        return Refused(
            reason=Reason.AWS_CLIENT_ERROR,
            message=f"the AWS client failed for {where}: {type(error).__name__}",
            retryable=False,
        )
    raise error


def classify_kubernetes_error(error: Exception, *, cluster: str, attempt: int = 0) -> ClusterAccessError:
    """Turn a failure talking to a cluster's API server into a member of the family.

    Catches by status code, never by message text. 401 means the cluster does not know the operator's
    identity at all (on EKS: no access entry or aws-auth mapping for the role); 403 means it knows it
    but RBAC refuses the call.
    """
    if isinstance(error, ClusterAccessError):
        return error
    delay = backoff_delay(attempt)
    # Includes UnauthorizedException, ForbiddenException etc., which the client raises by status.
    if isinstance(error, ApiException) and isinstance(error.status, int) and error.status > 0:
        status: int = error.status
        reason_text = str(error.reason or "")
        said, kind = _server_status(error)
        known = _Answer(status=status, server_message=said, details_kind=kind)
        if status == 401:
            return Refused(
                reason=Reason.CLUSTER_UNAUTHORIZED,
                message=f"cluster {cluster} did not accept the operator's credentials (401): on EKS, give "
                "the target role an access entry (or an aws-auth mapping) in the cluster",
                retryable=False,
                **known,
            )
        if status == 403:
            return Forbidden(
                reason=Reason.CLUSTER_FORBIDDEN,
                message=f"cluster {cluster} refused the operator (403 {reason_text}): the operator's "
                "identity there lacks the RBAC permissions jitgrant needs",
                retryable=False,
                **known,
            )
        if status == 404:
            return NotFound(
                reason=Reason.CLUSTER_OBJECT_NOT_FOUND,
                message=f"cluster {cluster}: {said or 'not found'}",
                retryable=False,
                **known,
            )
        if status == 409:
            return Conflict(
                reason=Reason.CLUSTER_CONFLICT,
                message=f"cluster {cluster}: {said or 'conflict'}",
                retryable=False,
                **known,
            )
        if status == 429 or status >= 500:
            return Unavailable(
                reason=Reason.CLUSTER_UNAVAILABLE,
                message=f"cluster {cluster} answered {status} {reason_text}; will retry",
                retryable=True,
                retry_after=delay,
                **known,
            )
        return Refused(
            reason=Reason.CLUSTER_REQUEST_REFUSED,
            message=f"cluster {cluster} refused the request: {status} {reason_text}",
            retryable=False,
            **known,
        )
    if _is_tls_failure(error):
        return Unavailable(
            reason=Reason.CLUSTER_TLS_FAILURE,
            message=f"the API server of cluster {cluster} did not present a certificate its CA vouches "
            "for; the CA is read again before the next try",
            retryable=True,
            retry_after=delay,
        )
    if _is_connection_failure(error):
        return Unavailable(
            reason=Reason.CLUSTER_UNREACHABLE,
            message=f"could not reach the API server of cluster {cluster} ({type(error).__name__}); "
            "will retry",
            retryable=True,
            retry_after=delay,
        )
    raise error


def _server_status(error: ApiException) -> tuple[str, str]:
    """The API server's own words and the kind it names, from the Status in the body."""
    try:
        payload = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return str(error.reason or ""), ""
    if not isinstance(payload, dict):
        return str(error.reason or ""), ""
    details = payload.get("details") or {}
    kind = details.get("kind", "") if isinstance(details, dict) else ""
    return str(payload.get("message") or error.reason or ""), str(kind or "")


def _is_tls_failure(error: BaseException) -> bool:
    # The client reports some TLS failures as ApiException with status 0; others surface as
    # urllib3's MaxRetryError whose `reason` is the SSLError.
    if isinstance(error, ApiException) and error.status == 0:
        return True
    reason = getattr(error, "reason", None)
    return isinstance(error, urllib3.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError)


def _is_connection_failure(error: BaseException) -> bool:
    module = type(error).__module__ or ""
    return module.startswith("urllib3") or isinstance(error, OSError | TimeoutError)
