"""Reaching an EKS cluster through an IAM role the operator assumes.

Three AWS steps, each cached: `assume` (STS AssumeRole, 15-minute sessions named after the request
and carrying the requester as SourceIdentity, so CloudTrail and the cluster's audit log say on whose
behalf the operator acted), `describe` (eks:DescribeCluster for the endpoint and CA) and `eks_token`
(the bearer token EKS accepts: `k8s-aws-v1.` + a presigned sts:GetCallerIdentity URL whose signature
covers the `x-k8s-aws-id: <cluster>` header, so it cannot be replayed against another cluster).

Credentials and tokens live only in memory: they are never written to disk, and their reprs and the
log lines here leave them out. The cache key includes the session's name and source identity: a
session opened for one request must never act for another, or CloudTrail would blame the wrong one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509

from jitgrant.clusters.connection import BearerToken
from jitgrant.clusters.errors import ClusterAccessError, classify_aws_error
from jitgrant.extras import require
from jitgrant.models import EKSTarget
from jitgrant.models.vocabulary import Reason

if TYPE_CHECKING:
    import boto3
    from botocore.credentials import Credentials
    from mypy_boto3_eks.client import EKSClient
    from mypy_boto3_sts.client import STSClient

log = logging.getLogger(__name__)

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# AssumeRole's minimum; grants are minutes long, so a longer session would only outlive its use.
SESSION_DURATION_SECONDS = 900
# What the token's URL says. STS ignores it for GetCallerIdentity, and EKS accepts a token until
# 15 minutes after it was signed (or until the signing credentials expire, whichever is first).
TOKEN_PRESIGN_EXPIRES_SECONDS = 60
TOKEN_LIFETIME = timedelta(minutes=15)
DEFAULT_CREDENTIAL_MARGIN = timedelta(minutes=5)
DEFAULT_TOKEN_MARGIN = timedelta(minutes=1)
# Cluster states in which the API server answers.
USABLE_CLUSTER_STATES = frozenset({"ACTIVE", "UPDATING"})

_STS_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9_+=,.@-]")
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sts_name(text: str, *, maximum: int = 64) -> str:
    """`text` in the charset STS allows for RoleSessionName and SourceIdentity ([\\w+=,.@-], 2-64).

    Other characters become "-". Text too long keeps its start and ends in a short hash of the
    whole, so two long names that share a prefix still give two different sessions.
    """
    if not text:
        raise ValueError("an STS session name or source identity cannot be empty")
    cleaned = _STS_NAME_FORBIDDEN.sub("-", text)
    if len(cleaned) > maximum:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[: maximum - len(digest) - 1]}-{digest}"
    return cleaned if len(cleaned) >= 2 else cleaned + "_"


@dataclass(frozen=True)
class RegionEndpoints:
    """Where to send AWS calls for one region; None means AWS's own regional endpoint.

    `token_sts` is the STS URL signed into EKS tokens. It is separate from `sts` because in dev the
    API calls go to moto while a token for a real cluster must name the real regional STS host.
    """

    sts: str | None = None
    eks: str | None = None
    token_sts: str | None = None


@dataclass(frozen=True)
class AssumedSession:
    """Temporary credentials for the target role; the secret parts never appear in a repr."""

    role_arn: str
    region: str
    session_name: str
    source_identity: str
    assumed_role_arn: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: datetime

    def botocore_credentials(self) -> Credentials:
        from botocore.credentials import Credentials

        return Credentials(self.access_key_id, self.secret_access_key, self.session_token)


@dataclass(frozen=True)
class ClusterEndpoint:
    server: str
    ca_pem: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EKSToken:
    """A bearer token for one EKS cluster.

    `expires_at` is when EKS stops accepting it: 15 minutes after signing or when the credentials
    that signed it expire, whichever is first. The URL inside says X-Amz-Expires=60; that is not
    the token's lifetime, so treat a leaked token as live until `expires_at`.
    """

    value: str = field(repr=False)
    signed_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class _SessionKey:
    role_arn: str
    external_id: str | None
    region: str
    cluster_name: str
    session_name: str
    source_identity: str


class EKSAccess:
    """Assumes target roles, describes EKS clusters and mints EKS tokens, caching all three."""

    def __init__(
        self,
        *,
        base_session: boto3.Session | None = None,
        region_endpoints: Mapping[str, RegionEndpoints] | None = None,
        default_endpoints: RegionEndpoints = RegionEndpoints(),
        endpoint_overrides: Mapping[str, tuple[str, bytes | None]] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        credential_margin: timedelta = DEFAULT_CREDENTIAL_MARGIN,
        token_margin: timedelta = DEFAULT_TOKEN_MARGIN,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        """`endpoint_overrides` (dev and tests only) maps a cluster ARN (or, for a name unique in
        the fleet, the bare name) to the (server URL, CA PEM or None) to use instead of what
        DescribeCluster says; DescribeCluster is still called, so a missing cluster or a denied call
        fails as it would in production. The ARN wins over the name."""
        # boto3 comes with the `aws` extra: imported here, so a plain install never loads it.
        require("aws", feature="EKS targets (jitgrant run --eks)")
        import boto3
        from botocore.config import Config

        self._base_session = base_session or boto3.Session()
        self._region_endpoints = dict(region_endpoints or {})
        self._default_endpoints = default_endpoints
        self._overrides = dict(endpoint_overrides or {})
        self._clock = clock
        self._credential_margin = credential_margin
        self._token_margin = token_margin
        # Retries are ours (see registry.py): a throttled account backs off as a whole, instead of
        # every call retrying inside a worker thread.
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
        self._lock = threading.Lock()  # guards the dicts below and the (not thread-safe) boto3 Session
        self._key_locks: dict[object, threading.Lock] = {}
        self._sts_clients: dict[str, STSClient] = {}
        self._token_urls: dict[str, str] = {}
        self._sessions: dict[_SessionKey, AssumedSession] = {}
        self._tokens: dict[tuple[str, str, str], EKSToken] = {}
        self._eks_clients: dict[str, tuple[datetime, EKSClient]] = {}

    # -- clients ----------------------------------------------------------------------------------

    def endpoints(self, region: str) -> RegionEndpoints:
        return self._region_endpoints.get(region, self._default_endpoints)

    def sts_client(self, region: str) -> STSClient:
        """The client AssumeRole goes through for `region` (cached; tests attach a Stubber to it)."""
        with self._lock:
            client = self._sts_clients.get(region)
            if client is None:
                client = self._base_session.client(
                    "sts", region_name=region, endpoint_url=self.endpoints(region).sts, config=self._config
                )
                self._sts_clients[region] = client
            return client

    def token_sts_url(self, region: str) -> str:
        """The STS URL signed into tokens: the configured one, else AWS's regional STS endpoint."""
        with self._lock:
            url = self._token_urls.get(region)
            if url is None:
                configured = self.endpoints(region).token_sts
                if configured is None:
                    regional = self._base_session.client("sts", region_name=region, config=self._config)
                    configured = str(regional.meta.endpoint_url)
                url = configured
                self._token_urls[region] = url.rstrip("/")
                url = self._token_urls[region]
            return url

    def eks_client(self, session: AssumedSession) -> EKSClient:
        """The EKS client acting as `session` (cached with it; tests attach a Stubber to it)."""
        with self._lock:
            now = self._clock()
            self._eks_clients = {k: v for k, v in self._eks_clients.items() if v[0] > now}
            cached = self._eks_clients.get(session.access_key_id)
            if cached is not None:
                return cached[1]
            client = self._base_session.client(
                "eks",
                region_name=session.region,
                endpoint_url=self.endpoints(session.region).eks,
                aws_access_key_id=session.access_key_id,
                aws_secret_access_key=session.secret_access_key,
                aws_session_token=session.session_token,
                config=self._config,
            )
            self._eks_clients[session.access_key_id] = (session.expires_at, client)
            return client

    def _key_lock(self, key: object) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    # -- assume -----------------------------------------------------------------------------------

    def assume(self, target: EKSTarget, *, session_name: str, source_identity: str) -> AssumedSession:
        """Credentials for `target.role_arn`, reused while they have more than the margin left."""
        key = _SessionKey(
            role_arn=target.role_arn,
            external_id=target.external_id,
            region=target.region,
            cluster_name=target.cluster_name,
            session_name=sts_name(session_name),
            source_identity=sts_name(source_identity),
        )
        with self._key_lock(key):
            cached = self._sessions.get(key)
            if cached is not None and self._clock() < cached.expires_at - self._credential_margin:
                return cached
            params: dict[str, Any] = {
                "RoleArn": target.role_arn,
                "RoleSessionName": key.session_name,
                "SourceIdentity": key.source_identity,
                "DurationSeconds": SESSION_DURATION_SECONDS,
            }
            if target.external_id:
                params["ExternalId"] = target.external_id
            try:
                response = self.sts_client(target.region).assume_role(**params)
            except Exception as error:
                raise classify_aws_error(error, target=target) from error
            credentials = response["Credentials"]
            session = AssumedSession(
                role_arn=target.role_arn,
                region=target.region,
                session_name=key.session_name,
                source_identity=key.source_identity,
                assumed_role_arn=response["AssumedRoleUser"]["Arn"],
                access_key_id=credentials["AccessKeyId"],
                secret_access_key=credentials["SecretAccessKey"],
                session_token=credentials["SessionToken"],
                expires_at=_aware(credentials["Expiration"]),
            )
            with self._lock:
                self._sessions = {k: v for k, v in self._sessions.items() if v.expires_at > self._clock()}
                self._sessions[key] = session
            log.info(
                "assumed %s as session %s for %s (source identity %s, until %s)",
                target.role_arn,
                key.session_name,
                target.cluster_name,
                key.source_identity,
                session.expires_at.isoformat(),
            )
            return session

    # -- describe ---------------------------------------------------------------------------------

    def describe(self, target: EKSTarget, session: AssumedSession) -> ClusterEndpoint:
        """The cluster's API endpoint and CA, from eks:DescribeCluster (or the dev override)."""
        try:
            cluster = self.eks_client(session).describe_cluster(name=target.cluster_name)["cluster"]
        except Exception as error:
            raise classify_aws_error(error, target=target) from error
        override = self._overrides.get(target.arn) or self._overrides.get(target.cluster_name)
        if override is not None:
            server, ca_pem = override
            log.info("using the configured endpoint override for EKS cluster %s", target.arn)
            return ClusterEndpoint(server=server, ca_pem=ca_pem)
        status = str(cluster.get("status", ""))
        endpoint = str(cluster.get("endpoint") or "")
        if status not in USABLE_CLUSTER_STATES or not endpoint:
            gone = status in ("DELETING", "FAILED")
            creating = not gone
            state = status or "without an endpoint"
            raise ClusterAccessError(
                reason=Reason.EKS_CLUSTER_NOT_READY if creating else "EKSClusterUnusable",
                message=f"EKS cluster {target.cluster_name} in {target.region} is {state}",
                retryable=creating,
                retry_after=30.0 if creating else 0.0,
            )
        ca_data = str(cluster.get("certificateAuthority", {}).get("data") or "")
        return ClusterEndpoint(server=endpoint, ca_pem=_ca_pem(ca_data, target=target))

    # -- token ------------------------------------------------------------------------------------

    def eks_token(self, session: AssumedSession, cluster_name: str) -> EKSToken:
        """A bearer token for `cluster_name`, signed with `session`'s credentials, cached."""
        url = self.token_sts_url(session.region)
        key = (session.access_key_id, cluster_name, url)
        with self._key_lock(key):
            with self._lock:
                cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.expires_at - self._token_margin:
                return cached
            token = presign_eks_token(
                credentials=session.botocore_credentials(),
                region=session.region,
                cluster_name=cluster_name,
                sts_url=url,
                credentials_expire_at=session.expires_at,
            )
            with self._lock:
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > self._clock()}
                self._tokens[key] = token
            log.debug("minted an EKS token for %s (session %s)", cluster_name, session.session_name)
            return token


def presign_eks_token(
    *,
    credentials: Credentials,
    region: str,
    cluster_name: str,
    sts_url: str,
    credentials_expire_at: datetime | None = None,
) -> EKSToken:
    """`k8s-aws-v1.` + base64url(presigned GET sts:GetCallerIdentity), signing `x-k8s-aws-id`."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(
        method="GET",
        url=f"{sts_url.rstrip('/')}/?Action=GetCallerIdentity&Version=2011-06-15",
        headers={CLUSTER_ID_HEADER: cluster_name},
    )
    SigV4QueryAuth(credentials, "sts", region, expires=TOKEN_PRESIGN_EXPIRES_SECONDS).add_auth(request)
    presigned = str(request.url)
    amz_date = parse_qs(urlsplit(presigned).query)["X-Amz-Date"][0]
    signed_at = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    expires_at = signed_at + TOKEN_LIFETIME
    if credentials_expire_at is not None:
        expires_at = min(expires_at, credentials_expire_at)
    value = TOKEN_PREFIX + base64.urlsafe_b64encode(presigned.encode()).decode().rstrip("=")
    return EKSToken(value=value, signed_at=signed_at, expires_at=expires_at)


class EKSTokenProvider:
    """A TokenProvider for one EKS target and one session identity (thread-safe through EKSAccess).

    Each call returns the cached token, re-assuming the role and re-signing a token only as they
    near expiry. A failure raises ClusterAccessError from inside the Kubernetes client call.
    """

    def __init__(
        self, access: EKSAccess, target: EKSTarget, *, session_name: str, source_identity: str
    ) -> None:
        self._access = access
        self._target = target
        self._session_name = session_name
        self._source_identity = source_identity

    def __call__(self) -> BearerToken:
        session = self._access.assume(
            self._target, session_name=self._session_name, source_identity=self._source_identity
        )
        token = self._access.eks_token(session, self._target.cluster_name)
        return BearerToken(value=token.value, expires_at=token.expires_at)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ca_pem(data: str, *, target: EKSTarget) -> bytes:
    """DescribeCluster's CA (base64 of a PEM bundle), checked to hold at least one certificate."""
    try:
        pem = base64.b64decode(data, validate=True)
        x509.load_pem_x509_certificates(pem)
    except (binascii.Error, ValueError):
        raise ClusterAccessError(
            reason=Reason.INVALID_CLUSTER_CA,
            message=f"EKS cluster {target.cluster_name} in {target.region} returned certificate authority "
            "data that is not a PEM certificate",
            retryable=False,
        ) from None
    return pem
