"""What EKS does with a bearer token, for the embedded test cluster (aws-iam-authenticator's logic).

The token is `k8s-aws-v1.` + base64url of a presigned sts:GetCallerIdentity URL. The authenticator
checks the URL's shape without trusting it, sends it to STS with its own cluster's name in the
`x-k8s-aws-id` header (the signature covers that header, so a token minted for another cluster
fails at STS), learns the caller's ARN from STS's answer and maps it to a Kubernetes user the way
EKS access entries and the aws-auth ConfigMap do.

The request always goes to `sts_endpoint_url`, never to the host the token names: a token must not
be able to point the authenticator at a server of the presenter's choosing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from yarl import URL

from jitgrant.clusters.eks import CLUSTER_ID_HEADER, TOKEN_LIFETIME, TOKEN_PREFIX

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8192
MAX_PRESIGN_EXPIRES_SECONDS = 900
# A token dated a little in the future is clock skew; much further is forged or broken.
ALLOWED_CLOCK_SKEW = timedelta(minutes=5)
# The real STS hosts a token may name (global, regional, China partition).
_REAL_STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
_ALLOWED_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
_ASSUMED_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>[0-9]{12}):assumed-role/(?P<role>[^/]+)/(?P<session>.+)$"
)
_ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>[0-9]{12}):role/(?:.*/)?(?P<role>[^/]+)$"
)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

RoleMapping = Mapping[str, tuple[str, Sequence[str]]]


class TokenRejected(Exception):
    """Why a token was refused (kept out of the return value: an authenticator answers yes or no)."""


def canonical_principal(arn: str) -> tuple[str, str | None]:
    """(IAM principal ARN, session name) for a caller ARN, as EKS matches mappings.

    An assumed-role ARN names the role without its IAM path, so role mappings are compared
    without the path too (a role `role/team/deployer` assumes as `assumed-role/deployer/...`).
    """
    assumed = _ASSUMED_ROLE_ARN.match(arn)
    if assumed is not None:
        principal = f"arn:{assumed['partition']}:iam::{assumed['account']}:role/{assumed['role']}"
        return principal, assumed["session"]
    return _strip_role_path(arn), None


def _strip_role_path(arn: str) -> str:
    role = _ROLE_ARN.match(arn)
    if role is None:
        return arn
    return f"arn:{role['partition']}:iam::{role['account']}:role/{role['role']}"


def parse_token(token: str, *, sts_endpoint_url: str, now: datetime) -> tuple[str, str]:
    """Check the token's shape; return (the URL's host, its raw query). Raises TokenRejected."""
    if not token.startswith(TOKEN_PREFIX):
        raise TokenRejected("not an EKS token (prefix)")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected("token too long")
    encoded = token[len(TOKEN_PREFIX) :]
    try:
        url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenRejected("token payload is not base64url of a URL") from None
    parts = urlsplit(url)
    configured = urlsplit(sts_endpoint_url)
    host = parts.netloc.lower()
    if host == configured.netloc.lower():
        if parts.scheme != configured.scheme:
            raise TokenRejected("scheme differs from the configured STS endpoint")
    elif parts.scheme != "https" or not _REAL_STS_HOST.match(host):
        raise TokenRejected(f"{parts.scheme}://{host} is not an STS endpoint")
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        raise TokenRejected("unexpected path, fragment or userinfo in the URL")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    params = {key.lower(): value for key, value in pairs}
    if len(params) != len(pairs):
        raise TokenRejected("a query parameter appears twice")
    unknown = set(params) - _ALLOWED_PARAMS
    if unknown:
        raise TokenRejected(f"unexpected query parameters {sorted(unknown)}")
    if params.get("action") != "GetCallerIdentity":
        raise TokenRejected("action is not GetCallerIdentity")
    signed = params.get("x-amz-signedheaders", "").lower().split(";")
    if CLUSTER_ID_HEADER not in signed or "host" not in signed:
        raise TokenRejected(f"the signature does not cover {CLUSTER_ID_HEADER} and host")
    try:
        expires = int(params.get("x-amz-expires", ""))
        signed_at = datetime.strptime(params.get("x-amz-date", ""), _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise TokenRejected("X-Amz-Expires or X-Amz-Date missing or malformed") from None
    if not 0 < expires <= MAX_PRESIGN_EXPIRES_SECONDS:
        raise TokenRejected(f"X-Amz-Expires {expires} is outside 1..{MAX_PRESIGN_EXPIRES_SECONDS}")
    if now > signed_at + TOKEN_LIFETIME:
        raise TokenRejected("token is older than 15 minutes")
    if signed_at > now + ALLOWED_CLOCK_SKEW:
        raise TokenRejected("token is dated in the future")
    if not params.get("x-amz-credential") or not params.get("x-amz-signature"):
        raise TokenRejected("credential or signature missing")
    return parts.netloc, parts.query


async def caller_arn(
    *, host: str, query: str, cluster_name: str, sts_endpoint_url: str, time_limit: float = 5.0
) -> str:
    """Ask STS who signed the URL, presenting this cluster's name in the signed header."""
    url = URL(f"{sts_endpoint_url.rstrip('/')}/?{query}", encoded=True)
    headers = {CLUSTER_ID_HEADER: cluster_name, "Accept": "application/json", "Host": host}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=time_limit)) as session,
        session.get(url, headers=headers, allow_redirects=False) as response,
    ):
        if response.status != 200:
            raise TokenRejected(f"STS refused the token ({response.status})")
        body = await response.json(content_type=None)
    try:
        return str(body["GetCallerIdentityResponse"]["GetCallerIdentityResult"]["Arn"])
    except (KeyError, TypeError):
        raise TokenRejected("STS answered without a caller ARN") from None


def map_principal(arn: str, role_mapping: RoleMapping) -> tuple[str, tuple[str, ...]] | None:
    """The Kubernetes (username, groups) for a caller ARN, expanding {{SessionName}}-style templates."""
    principal, session = canonical_principal(arn)
    normalized = {_strip_role_path(key): value for key, value in role_mapping.items()}
    entry = normalized.get(principal)
    if entry is None:
        return None
    template, groups = entry
    account = principal.split(":")[4]
    username = (
        template.replace("{{AccountID}}", account)
        .replace("{{SessionNameRaw}}", session or "")
        .replace("{{SessionName}}", (session or "").replace("@", "-"))
    )
    return username, tuple(groups)


async def verify_eks_token(
    token: str,
    *,
    cluster_name: str,
    sts_endpoint_url: str,
    role_mapping: RoleMapping,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[str, tuple[str, ...]] | None:
    """(username, groups) for a valid EKS token for `cluster_name`, or None.

    `role_mapping` maps IAM role (or user) ARNs to (username template, groups), like access entries
    or aws-auth `mapRoles`; the username may use {{SessionName}}, {{SessionNameRaw}}, {{AccountID}}.
    """
    try:
        host, query = parse_token(token, sts_endpoint_url=sts_endpoint_url, now=clock())
        arn = await caller_arn(
            host=host, query=query, cluster_name=cluster_name, sts_endpoint_url=sts_endpoint_url
        )
    except TokenRejected as rejected:
        log.info("refused an EKS token for %s: %s", cluster_name, rejected)
        return None
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("could not ask STS about an EKS token for %s: %s", cluster_name, type(error).__name__)
        return None
    identity = map_principal(arn, role_mapping)
    if identity is None:
        log.info("EKS token for %s from %s matches no mapping", cluster_name, arn)
    return identity
