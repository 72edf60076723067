"""Fetching an issuer's signing keys: OIDC discovery, then its JWKS, cached.

The network adapter for `jitgrant.identity.oidc`. Keys are cached per issuer for `ttl`; a token naming a
key id that is not in the cache makes the cache refetch, but at most once per `refetch_interval`, so a
stream of tokens with made-up `kid`s cannot turn the operator into a load generator against the issuer.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 1024 * 1024


class JWKSError(Exception):
    """The issuer's keys could not be fetched, or hold no usable key for this token."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _IssuerKeys:
    keys: Mapping[str, Mapping[str, Any]]
    fetched_at: datetime


class JWKSCache:
    """Signing keys by issuer and key id, fetched through the issuer's discovery document."""

    def __init__(
        self,
        *,
        ttl: timedelta = timedelta(minutes=15),
        refetch_interval: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = _utcnow,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._ttl = ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache: dict[str, _IssuerKeys] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # how many times a JWKS was fetched; for metrics and tests

    async def key(self, issuer: str, kid: str) -> Mapping[str, Any]:
        """The JWK with this `kid` from the issuer's JWKS, or JWKSError saying why there is none."""
        lock = self._locks.setdefault(issuer, asyncio.Lock())
        async with lock:
            entry = self._cache.get(issuer)
            now = self._clock()
            if entry is None or now - entry.fetched_at >= self._ttl:
                entry = await self._refresh(issuer)
            if kid in entry.keys:
                return entry.keys[kid]
            if now - entry.fetched_at >= self._refetch_interval:
                entry = await self._refresh(issuer)
                if kid in entry.keys:
                    return entry.keys[kid]
        raise JWKSError(f"unknown signing key id (kid) {kid!r} for issuer {issuer}")

    async def _refresh(self, issuer: str) -> _IssuerKeys:
        keys = await self._fetch_keys(issuer)
        entry = _IssuerKeys(keys=keys, fetched_at=self._clock())
        self._cache[issuer] = entry
        self.fetches += 1
        return entry

    async def _fetch_keys(self, issuer: str) -> dict[str, Mapping[str, Any]]:
        _require_https(issuer, what="issuer")
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            discovery = await self._get_json(session, issuer.rstrip("/") + DISCOVERY_PATH)
            if discovery.get("issuer") != issuer:
                named = discovery.get("issuer")
                raise JWKSError(f"discovery document of {issuer} names issuer {named!r}; they must match")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise JWKSError(f"discovery document of {issuer} has no jwks_uri")
            _require_https(jwks_uri, what="jwks_uri")
            jwks = await self._get_json(session, jwks_uri)
        raw_keys = jwks.get("keys")
        if not isinstance(raw_keys, list):
            raise JWKSError(f"JWKS of {issuer} has no 'keys' list")
        keys: dict[str, Mapping[str, Any]] = {}
        for jwk in raw_keys:
            if isinstance(jwk, Mapping) and isinstance(jwk.get("kid"), str):
                keys.setdefault(jwk["kid"], dict(jwk))
        return keys

    async def _get_json(self, session: aiohttp.ClientSession, url: str) -> Mapping[str, Any]:
        try:
            async with session.get(url, ssl=self._ssl, allow_redirects=False) as response:
                if response.status != 200:
                    raise JWKSError(f"GET {url} answered HTTP {response.status}")
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise JWKSError(f"GET {url} failed: {error or type(error).__name__}") from error
        if len(body) > MAX_DOCUMENT_BYTES:
            raise JWKSError(f"GET {url} returned more than {MAX_DOCUMENT_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as error:
            raise JWKSError(f"GET {url} did not return JSON") from error
        if not isinstance(data, Mapping):
            raise JWKSError(f"GET {url} did not return a JSON object")
        return data


def _require_https(url: str, *, what: str) -> None:
    if urlsplit(url).scheme != "https":
        raise JWKSError(f"{what} {url} is not an https URL; keys are only fetched over TLS")
