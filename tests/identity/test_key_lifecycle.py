"""Key lifecycle as an identity provider runs it: rotation, deletion, Cache-Control, refresh.

Against the local issuer over TLS, with the verifier's clock moved by hand. On the old adapter a
deleted key stayed accepted for 15 minutes, a rotated-in key was refused for up to 60 s, max-age was
ignored and there was no way to make the cache fetch again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitgrant.identity.jwks import JWKSCache, cache_lifetime
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused
from jitgrant.models import OIDCRequester

from .issuer import AUDIENCE, LocalIssuer, local_issuer, public_jwk, rsa_key

HOUR = 3600


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Marks:
    """The refresh Lease as the cache sees it: a mark per issuer (tests/realapi covers the Lease)."""

    def __init__(self) -> None:
        self.value = "0"

    async def mark(self, issuer: str) -> str:
        return self.value


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    async with local_issuer(tmp_path / "issuer") as running:
        yield running


def config(issuer: LocalIssuer) -> OIDCRequester:
    return OIDCRequester(issuer=issuer.url, audience=AUDIENCE, subjects=("agent-7",))


def verifier_for(issuer: LocalIssuer, clock: Clock, **cache: object) -> OIDCVerifier:
    keys = JWKSCache(ssl_context=issuer.ssl_context(), clock=clock, **cache)  # type: ignore[arg-type]
    return OIDCVerifier(keys=keys, clock=clock)


async def accepted(verifier: OIDCVerifier, issuer: LocalIssuer, kid: str = "rsa-1") -> bool:
    token = issuer.mint(kid=kid, key=rsa_key(kid), lifetime=HOUR)
    try:
        await verifier.verify(token, issuer=config(issuer))
    except TokenRefused as refused:
        assert "unknown signing key id" in str(refused), refused
        return False
    return True


def remove(issuer: LocalIssuer, kid: str) -> None:
    issuer.published[:] = [jwk for jwk in issuer.published if jwk["kid"] != kid]


async def test_a_deleted_key_is_refused_within_the_ttl(issuer: LocalIssuer) -> None:
    clock = Clock()
    verifier = verifier_for(issuer, clock)  # defaults: 5 minutes, 5 s
    assert await accepted(verifier, issuer)
    remove(issuer, "rsa-1")
    clock.now += timedelta(minutes=4, seconds=59)
    assert await accepted(verifier, issuer)  # the worst case: cached until the TTL
    clock.now += timedelta(seconds=1)
    assert not await accepted(verifier, issuer)
    assert issuer.jwks_requests == 2


async def test_the_ttl_is_a_setting(issuer: LocalIssuer) -> None:
    clock = Clock()
    verifier = verifier_for(issuer, clock, ttl=timedelta(seconds=30))
    assert await accepted(verifier, issuer)
    remove(issuer, "rsa-1")
    clock.now += timedelta(seconds=30)
    assert not await accepted(verifier, issuer)


@pytest.mark.parametrize(
    ("cache_control", "kept"),
    [
        ("public, max-age=60", timedelta(seconds=60)),  # honoured below the cap
        ("max-age=86400", timedelta(minutes=5)),  # capped at the TTL
        ("no-store", timedelta(seconds=5)),  # never below the refetch interval
        (None, timedelta(minutes=5)),
    ],
)
async def test_cache_control_max_age_is_honoured_up_to_the_cap(
    issuer: LocalIssuer, cache_control: str | None, kept: timedelta
) -> None:
    if cache_control:
        issuer.jwks_headers["Cache-Control"] = cache_control
    clock = Clock()
    verifier = verifier_for(issuer, clock)
    assert await accepted(verifier, issuer)
    remove(issuer, "rsa-1")
    clock.now += kept - timedelta(seconds=1)
    assert await accepted(verifier, issuer)
    clock.now += timedelta(seconds=1)
    assert not await accepted(verifier, issuer)


def test_cache_lifetime_parsing() -> None:
    cap, floor = timedelta(minutes=5), timedelta(seconds=5)
    assert cache_lifetime('max-age="120", must-revalidate', cap=cap, floor=floor) == timedelta(seconds=120)
    assert cache_lifetime("s-maxage=10", cap=cap, floor=floor) == cap  # not max-age
    assert cache_lifetime("private, no-cache", cap=cap, floor=floor) == floor


async def test_a_rotated_in_key_is_accepted_at_once(issuer: LocalIssuer) -> None:
    """Hydra signs with a new key as soon as it publishes it: no 60 s of refusals."""
    clock = Clock()
    verifier = verifier_for(issuer, clock)
    assert await accepted(verifier, issuer)
    issuer.published.append(public_jwk(rsa_key("rsa-2"), kid="rsa-2"))
    clock.now += timedelta(seconds=5)  # the refetch interval since the last fetch
    assert await accepted(verifier, issuer, kid="rsa-2")
    assert issuer.jwks_requests == 2


async def test_unknown_kids_refetch_at_most_once_per_interval_per_issuer(issuer: LocalIssuer) -> None:
    clock = Clock()
    verifier = verifier_for(issuer, clock, refetch_interval=timedelta(seconds=5))
    assert await accepted(verifier, issuer)
    issuer.published.append(public_jwk(rsa_key("rsa-2"), kid="rsa-2"))
    clock.now += timedelta(seconds=4)
    assert not await accepted(verifier, issuer, kid="rsa-2")  # fetched 4 s ago: no refetch yet
    assert issuer.jwks_requests == 1
    clock.now += timedelta(seconds=1)
    # A burst of made-up kids at once is one fetch, shared.
    forged = [issuer.mint(kid=f"made-up-{n}", key=rsa_key("x"), lifetime=HOUR) for n in range(20)]
    outcomes = await asyncio.gather(
        *(verifier.verify(token, issuer=config(issuer)) for token in forged), return_exceptions=True
    )
    assert all(isinstance(outcome, TokenRefused) for outcome in outcomes)
    assert issuer.jwks_requests == 2
    assert await accepted(verifier, issuer, kid="rsa-2")  # the shared fetch found the rotated key
    assert issuer.jwks_requests == 2


async def test_a_refresh_mark_makes_the_cache_fetch_now(issuer: LocalIssuer) -> None:
    clock = Clock()
    marks = Marks()
    verifier = verifier_for(issuer, clock, refresh=marks)
    assert await accepted(verifier, issuer)
    remove(issuer, "rsa-1")
    assert await accepted(verifier, issuer)  # cached: the IdP's deletion is not seen yet
    marks.value = "1"  # `jitgrant identity refresh`
    assert not await accepted(verifier, issuer)
    assert issuer.jwks_requests == 2


async def test_an_unreadable_refresh_mark_means_fetch_again(issuer: LocalIssuer) -> None:
    class Unreadable:
        async def mark(self, issuer: str) -> str:
            raise ConnectionError("API server unreachable")

    clock = Clock()
    verifier = verifier_for(issuer, clock, refresh=Unreadable())
    assert await accepted(verifier, issuer)
    remove(issuer, "rsa-1")
    clock.now += timedelta(seconds=1)
    assert not await accepted(verifier, issuer)
