"""Fetching an issuer's signing keys: OIDC discovery, then its JWKS, cached. The network adapter for
`jitgrant.identity.oidc`.

Key lifecycle (docs/identity-and-approvals.md, "Signing keys"):
- Keys are cached per issuer for the JWKS response's `Cache-Control: max-age`, capped at `ttl`
  (default 5 minutes) and never below `refetch_interval`; without max-age, for `ttl`. Each fetch
  replaces the whole set, so a key the issuer removed stops being accepted at the next fetch, and
  within `ttl` at worst.
- A token naming a key id that is not cached makes the cache fetch again at once (an issuer signs
  with a rotated-in key as soon as it publishes it), but at most once per `refetch_interval` per
  issuer, so a stream of tokens with made-up `kid`s cannot turn the operator into a load generator.
- Concurrent callers share one fetch per issuer, and each call is bounded by `fetch_budget`
  (discovery and JWKS together, default 3 s) so the webhook answers with jitgrant's own refusal
  well inside the API server's 10 s webhook timeout, never with the API server's 500.
- `refresh` (optional) is asked before cached keys are used: when an operator ran
  `jitgrant identity refresh`, its mark for the issuer changed and the keys are fetched again.
- Bodies are read whole (`jitgrant.httpbody`), and each refusal names its real cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from jitgrant.httpbody import BodyError, read_body
from jitgrant.models.policy import CABundleRef

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 1024 * 1024
DEFAULT_TTL = timedelta(minutes=5)
DEFAULT_REFETCH_INTERVAL = timedelta(seconds=5)
DEFAULT_FETCH_BUDGET = timedelta(seconds=3)
# How long the refresh mark (an API read) may take before the keys are simply fetched again.
MARK_BUDGET_SECONDS = 1.0

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class JWKSError(Exception):
    """The issuer's keys could not be fetched, or hold no usable key for this token."""


class IssuerUnavailable(JWKSError):
    """The issuer did not answer (in time, or at all): nothing about the token was decided."""


class CABundleSource(Protocol):
    """Reads the PEM bundle a policy's issuer entry names (the cluster adapter implements it)."""

    async def pem(self, ref: CABundleRef) -> str: ...


class RefreshMarks(Protocol):
    """The current refresh mark for an issuer: keys fetched under another mark are fetched again."""

    async def mark(self, issuer: str) -> str: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _seconds(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g} s"


def cache_lifetime(cache_control: str | None, *, cap: timedelta, floor: timedelta) -> timedelta:
    """How long to keep a JWKS: the response's max-age (no-cache/no-store: 0) within [floor, cap]."""
    if not cache_control:
        return cap
    if _NO_CACHE.search(cache_control):
        wanted = timedelta(0)
    else:
        match = _MAX_AGE.search(cache_control)
        if match is None:
            return cap
        wanted = timedelta(seconds=int(match.group(1)))
    return max(min(wanted, cap), min(floor, cap))


@dataclass(frozen=True)
class _IssuerKeys:
    keys: Mapping[str, Mapping[str, Any]]
    fetched_at: datetime
    expires_at: datetime
    mark: str | None


@dataclass(frozen=True)
class Discovery:
    """What the issuer's discovery document says, as fetched."""

    issuer: str
    jwks_uri: str


class JWKSCache:
    """Signing keys by issuer and key id, fetched through the issuer's discovery document."""

    def __init__(
        self,
        *,
        ttl: timedelta = DEFAULT_TTL,
        refetch_interval: timedelta = DEFAULT_REFETCH_INTERVAL,
        fetch_budget: timedelta = DEFAULT_FETCH_BUDGET,
        clock: Callable[[], datetime] = _utcnow,
        ssl_context: ssl.SSLContext | None = None,
        ca_bundles: CABundleSource | None = None,
        refresh: RefreshMarks | None = None,
    ) -> None:
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._budget = fetch_budget
        self._clock = clock
        self._base_ssl = ssl_context
        self._ca_bundles = ca_bundles
        self._refresh = refresh
        self._cache: dict[tuple[str, str], _IssuerKeys] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[_IssuerKeys]] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._unreadable = itertools.count()
        self.fetches = 0  # how many times a JWKS was fetched; for metrics and tests

    @property
    def fetch_budget(self) -> timedelta:
        return self._budget

    def forget(self, issuer: str | None = None) -> None:
        """Drop the cached keys of `issuer` (of every issuer with None): the next use fetches."""
        for cached in [k for k in self._cache if issuer is None or k[0] == issuer]:
            del self._cache[cached]

    async def key(self, issuer: str, kid: str, *, ca_bundle: CABundleRef | None = None) -> Mapping[str, Any]:
        """The JWK with this `kid` from the issuer's JWKS, or JWKSError saying why there is none."""
        mark = await self._mark(issuer)
        slot = (issuer, _ref_key(ca_bundle))
        try:
            async with asyncio.timeout(self._budget.total_seconds()):
                entry = self._cache.get(slot)
                now = self._clock()
                fresh = False
                if entry is None or now >= entry.expires_at or entry.mark != mark:
                    entry, fresh = await self._shared_refresh(slot, issuer, ca_bundle, mark), True
                if kid in entry.keys:
                    return entry.keys[kid]
                # Unknown kid: the issuer may have just rotated it in. Fetch again at once, unless
                # this issuer's keys were fetched less than refetch_interval ago.
                if not fresh and self._clock() - entry.fetched_at >= self._refetch_interval:
                    entry = await self._shared_refresh(slot, issuer, ca_bundle, mark)
                    if kid in entry.keys:
                        return entry.keys[kid]
        except TimeoutError as error:
            raise self._too_slow(issuer) from error
        raise JWKSError(f"unknown signing key id (kid) {kid!r} for issuer {issuer}")

    async def discovery(self, issuer: str, *, ca_bundle: CABundleRef | None = None) -> Discovery:
        """The issuer's discovery document as it names itself, within the fetch budget (the policy
        Ready check compares its `issuer` with the policy's)."""
        try:
            async with asyncio.timeout(self._budget.total_seconds()):
                context = await self._ssl_for(ca_bundle)
                async with aiohttp.ClientSession() as session:
                    return await self._discover(session, issuer, context)
        except TimeoutError as error:
            raise self._too_slow(issuer) from error

    def _too_slow(self, issuer: str) -> IssuerUnavailable:
        return IssuerUnavailable(f"identity provider {issuer} did not answer within {_seconds(self._budget)}")

    async def _mark(self, issuer: str) -> str | None:
        if self._refresh is None:
            return None
        try:
            async with asyncio.timeout(MARK_BUDGET_SECONDS):
                return await self._refresh.mark(issuer)
        except Exception:
            # Unsure whether a refresh was asked for: fetch again (this mark matches nothing cached).
            return f"unreadable-{next(self._unreadable)}"

    async def _shared_refresh(
        self, slot: tuple[str, str], issuer: str, ca_bundle: CABundleRef | None, mark: str | None
    ) -> _IssuerKeys:
        """One fetch per issuer at a time: callers arriving while it runs wait for its result."""
        task = self._inflight.get(slot)
        if task is None:
            task = asyncio.create_task(self._refresh_keys(slot, issuer, ca_bundle, mark))
            self._inflight[slot] = task
            task.add_done_callback(lambda done: self._settled(slot, done))
        # shield: one caller giving up (its own budget) does not cancel the fetch others wait on.
        return await asyncio.shield(task)

    def _settled(self, slot: tuple[str, str], task: asyncio.Task[_IssuerKeys]) -> None:
        self._inflight.pop(slot, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have given up already

    async def _refresh_keys(
        self, slot: tuple[str, str], issuer: str, ca_bundle: CABundleRef | None, mark: str | None
    ) -> _IssuerKeys:
        try:
            async with asyncio.timeout(self._budget.total_seconds()):
                keys, cache_control = await self._fetch_keys(issuer, ca_bundle)
        except TimeoutError as error:
            raise self._too_slow(issuer) from error
        fetched = self._clock()
        lifetime = cache_lifetime(cache_control, cap=self._ttl, floor=self._refetch_interval)
        entry = _IssuerKeys(keys=keys, fetched_at=fetched, expires_at=fetched + lifetime, mark=mark)
        self._cache[slot] = entry
        self.fetches += 1
        return entry

    async def _ssl_for(self, ca_bundle: CABundleRef | None) -> ssl.SSLContext:
        if ca_bundle is None:
            if self._base_ssl is None:
                self._base_ssl = ssl.create_default_context()
            return self._base_ssl
        if self._ca_bundles is None:
            raise JWKSError(
                f"caBundle ({ca_bundle.source}) cannot be read: this verifier has no access to the cluster"
            )
        pem = await self._ca_bundles.pem(ca_bundle)
        digest = hashlib.sha256(pem.encode()).hexdigest()
        context = self._contexts.get(digest)
        if context is None:
            # The system roots, plus the bundle: a private CA is trusted for this issuer only, and
            # nothing the process trusts otherwise is replaced (SSL_CERT_FILE would replace it all).
            context = ssl.create_default_context()
            try:
                context.load_verify_locations(cadata=pem)
            except (ssl.SSLError, ValueError) as error:
                raise JWKSError(
                    f"caBundle ({ca_bundle.source}, key {ca_bundle.key}) holds no usable PEM "
                    f"certificate: {error}"
                ) from error
            self._contexts[digest] = context
        return context

    async def _fetch_keys(
        self, issuer: str, ca_bundle: CABundleRef | None
    ) -> tuple[dict[str, Mapping[str, Any]], str | None]:
        context = await self._ssl_for(ca_bundle)
        async with aiohttp.ClientSession() as session:
            found = await self._discover(session, issuer, context)
            if found.issuer != issuer:
                raise JWKSError(
                    f"the discovery document of {issuer} names issuer {found.issuer!r}; they must match "
                    "exactly (a trailing slash counts): write the issuer in the policy as the IdP does"
                )
            jwks, cache_control = await self._get_json(
                session, found.jwks_uri, context, what=f"the JWKS of identity provider {issuer}"
            )
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list):
            raise JWKSError(f"the JWKS of identity provider {issuer} has no 'keys' list")
        keys: dict[str, Mapping[str, Any]] = {}
        for jwk in raw_keys:
            if isinstance(jwk, Mapping) and isinstance(jwk.get("kid"), str):
                keys.setdefault(jwk["kid"], dict(jwk))
        return keys, cache_control

    async def _discover(
        self, session: aiohttp.ClientSession, issuer: str, context: ssl.SSLContext
    ) -> Discovery:
        _require_https(issuer, what="issuer")
        document, _ = await self._get_json(
            session,
            issuer.rstrip("/") + DISCOVERY_PATH,
            context,
            what=f"the discovery document of identity provider {issuer}",
        )
        named = document.get("issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(named, str):
            raise JWKSError(f"the discovery document of identity provider {issuer} has no 'issuer'")
        if not isinstance(jwks_uri, str):
            raise JWKSError(f"the discovery document of identity provider {issuer} has no 'jwks_uri'")
        _require_https(jwks_uri, what="jwks_uri")
        return Discovery(issuer=named, jwks_uri=jwks_uri)

    async def _get_json(
        self, session: aiohttp.ClientSession, url: str, context: ssl.SSLContext, *, what: str
    ) -> tuple[Mapping[str, Any], str | None]:
        try:
            async with session.get(url, ssl=context, allow_redirects=False) as response:
                if response.status != 200:
                    raise JWKSError(f"{what} ({url}) answered HTTP {response.status}; expected 200")
                body = await read_body(
                    response.content,
                    limit=MAX_DOCUMENT_BYTES,
                    what=what,
                    declared=response.content_length,
                )
                cache_control = response.headers.get("Cache-Control")
        except BodyError as error:
            raise JWKSError(str(error)) from error
        except aiohttp.ClientConnectorCertificateError as error:
            raise IssuerUnavailable(
                f"{what} ({url}): the TLS certificate is not trusted ({error.certificate_error}); "
                "for a private CA, name it in the issuer's caBundle"
            ) from error
        except aiohttp.ClientError as error:
            raise IssuerUnavailable(
                f"{what} ({url}) could not be fetched: {error or type(error).__name__}"
            ) from error
        try:
            data = json.loads(body)
        except ValueError as error:
            raise JWKSError(f"{what} ({url}) is not JSON ({len(body):,} bytes: {error})") from error
        if not isinstance(data, Mapping):
            raise JWKSError(f"{what} ({url}) is not a JSON object")
        return data, cache_control


def _ref_key(ref: CABundleRef | None) -> str:
    return "" if ref is None else f"{ref.source}/{ref.key}"


def _require_https(url: str, *, what: str) -> None:
    if urlsplit(url).scheme != "https":
        raise JWKSError(f"{what} {url} is not an https URL; keys are only fetched over TLS")
