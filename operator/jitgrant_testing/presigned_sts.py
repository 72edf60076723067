"""A stand-in for STS answering presigned GetCallerIdentity URLs, backed by moto (dev and tests only).

EKS authenticates a bearer token by sending its presigned URL to STS. moto (5.2) cannot answer
that: its server routes a request to a service by the `Authorization` header, and a presigned GET
has none (checked: it lands in moto's S3 and returns ListAllMyBuckets), and its GetCallerIdentity
reads the caller's key only from that header too. So this small server does what STS does with a
presigned URL - checks its age (15 minutes from X-Amz-Date, whatever X-Amz-Expires says), the
credentials and the SigV4 signature over the query and the signed headers, `x-k8s-aws-id`
included - and then asks moto who the caller is with an ordinary header-signed request, returning
STS's JSON answer. moto never checks signatures; this server does when it is given `secrets`.
"""

from __future__ import annotations

import hmac
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
from aiohttp import web
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PRESIGNED_URL_LIFETIME = timedelta(minutes=15)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
_INVALID_TOKEN = "The security token included in the request is invalid"
_EXPIRED_TOKEN = "The security token included in the request is expired"


@dataclass(frozen=True)
class IssuedCredentials:
    """What STS knows about an access key it issued."""

    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None


SecretLookup = Callable[[str], IssuedCredentials | None]


def moto_secrets(access_key_id: str) -> IssuedCredentials | None:
    """Look an access key up in the moto backends of this process (ThreadedMotoServer shares them)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account_id in list(sts_backends):
        for partition in list(sts_backends[account_id]):
            for role in list(sts_backends[account_id][partition].assumed_roles):
                if role.access_key_id == access_key_id:
                    expiration: datetime = role.expiration
                    expires = expiration.replace(tzinfo=UTC) if expiration.tzinfo is None else expiration
                    return IssuedCredentials(
                        secret_access_key=role.secret_access_key,
                        session_token=role.session_token,
                        expires_at=expires,
                    )
    for account_id in list(iam_backends):
        for partition in list(iam_backends[account_id]):
            backend = iam_backends[account_id][partition]
            for user_name in list(backend.users):
                for key in backend.list_access_keys(user_name):
                    if key.access_key_id == access_key_id:
                        return IssuedCredentials(secret_access_key=key.secret_access_key)
    return None


def _sts_error(status: int, code: str, message: str) -> web.Response:
    body = {"Error": {"Code": code, "Message": message, "Type": "Sender"}, "RequestId": str(uuid.uuid4())}
    return web.json_response(body, status=status)


class PresignedSTS:
    """An HTTP server on 127.0.0.1 that checks presigned GetCallerIdentity URLs and asks moto who called."""

    def __init__(
        self,
        *,
        moto_url: str,
        secrets: SecretLookup | None = moto_secrets,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._moto_url = moto_url.rstrip("/")
        self._secrets = secrets
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("PresignedSTS is not started")
        return self._url

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = int(self._runner.addresses[0][1])
        self._url = f"http://{host}:{bound_port}"
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        pairs = parse_qsl(request.query_string, keep_blank_values=True)
        query = dict(pairs)
        if len(query) != len(pairs):
            return _sts_error(400, "InvalidParameterCombination", "a query parameter appears twice")
        if query.get("Action") != "GetCallerIdentity":
            return _sts_error(400, "InvalidAction", "only presigned GetCallerIdentity is served here")
        try:
            credential = query["X-Amz-Credential"]
            access_key_id, _date, region, service, _terminal = credential.split("/")
            amz_date = datetime.strptime(query["X-Amz-Date"], _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
            signed_headers = query["X-Amz-SignedHeaders"].split(";")
            signature = query["X-Amz-Signature"]
            expires = int(query.get("X-Amz-Expires", "0"))
        except (KeyError, ValueError):
            return _sts_error(400, "MissingAuthenticationToken", "not a complete SigV4 presigned URL")
        if service != "sts":
            return _sts_error(403, "SignatureDoesNotMatch", f"credential scope names service {service}")
        if self._clock() > amz_date + PRESIGNED_URL_LIFETIME:
            return _sts_error(403, "SignatureDoesNotMatch", "Signature expired")
        if self._secrets is not None:
            issued = self._secrets(access_key_id)
            if issued is None:
                return _sts_error(403, "InvalidClientTokenId", _INVALID_TOKEN)
            if issued.session_token is not None and not hmac.compare_digest(
                issued.session_token, query.get("X-Amz-Security-Token", "")
            ):
                return _sts_error(403, "InvalidClientTokenId", _INVALID_TOKEN)
            if issued.expires_at is not None and self._clock() >= issued.expires_at:
                return _sts_error(403, "ExpiredToken", _EXPIRED_TOKEN)
            expected = _signature(
                request=request,
                pairs=pairs,
                signed_headers=signed_headers,
                credentials=Credentials(access_key_id, issued.secret_access_key, issued.session_token),
                region=region,
                amz_date=query["X-Amz-Date"],
                expires=expires,
            )
            if expected is None or not hmac.compare_digest(expected, signature):
                return _sts_error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided",
                )
        return await self._ask_moto(query=query, credential=credential, signed_headers=signed_headers)

    async def _ask_moto(
        self, *, query: dict[str, str], credential: str, signed_headers: list[str]
    ) -> web.Response:
        headers = {
            "Authorization": f"AWS4-HMAC-SHA256 Credential={credential}, "
            f"SignedHeaders={';'.join(signed_headers)}, Signature={query['X-Amz-Signature']}",
            "X-Amz-Date": query["X-Amz-Date"],
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        }
        if "X-Amz-Security-Token" in query:
            headers["X-Amz-Security-Token"] = query["X-Amz-Security-Token"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self._moto_url + "/", data="Action=GetCallerIdentity&Version=2011-06-15", headers=headers
            ) as response,
        ):
            text = await response.text()
            if response.status != 200:
                return _sts_error(response.status, "MotoError", text[:200])
        # moto's own answer from 127.0.0.1, not untrusted input.
        root = ElementTree.fromstring(text)  # noqa: S314
        result = root.find(f"{_STS_NS}GetCallerIdentityResult")
        if result is None:
            return _sts_error(502, "MotoError", "moto's answer has no GetCallerIdentityResult")
        fields = {name: (result.findtext(f"{_STS_NS}{name}") or "") for name in ("Arn", "UserId", "Account")}
        body: dict[str, Any] = {
            "GetCallerIdentityResponse": {
                "GetCallerIdentityResult": fields,
                "ResponseMetadata": {"RequestId": str(uuid.uuid4())},
            }
        }
        return web.json_response(body)


def _signature(
    *,
    request: web.Request,
    pairs: list[tuple[str, str]],
    signed_headers: list[str],
    credentials: Credentials,
    region: str,
    amz_date: str,
    expires: int,
) -> str | None:
    """The SigV4 query signature STS would compute for this request, or None if a signed header is missing."""
    headers: dict[str, str] = {}
    for name in signed_headers:
        if name == "host":
            continue
        value = request.headers.get(name)
        if value is None:
            return None
        headers[name] = value
    host = request.headers.get("Host", "")
    unsigned = [(key, value) for key, value in pairs if key != "X-Amz-Signature"]
    url = f"https://{host}{request.path}?{urlencode(unsigned, quote_via=quote)}"
    rebuilt = AWSRequest(method="GET", url=url, headers=headers)
    rebuilt.context["timestamp"] = amz_date
    auth = SigV4QueryAuth(credentials, "sts", region, expires=expires)
    canonical = auth.canonical_request(rebuilt)
    return str(auth.signature(auth.string_to_sign(rebuilt, canonical), rebuilt))
