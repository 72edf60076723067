"""ID-token verification against a real local issuer (discovery + JWKS over HTTPS), attacks included.

Each refused token shows the reason the webhook hands back to the person who sent it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from jitgrant.identity.claims import ReplayCache
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused
from jitgrant.models import OIDCRequester, ProofKind

from .issuer import (
    AUDIENCE,
    LocalIssuer,
    b64,
    ec_key,
    hmac_token,
    local_issuer,
    public_jwk,
    rsa_key,
    unsigned_token,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    async with local_issuer(tmp_path / "issuer") as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(issuer: LocalIssuer, clock: Clock) -> JWKSCache:
    return JWKSCache(ssl_context=issuer.ssl_context(), clock=clock, refetch_interval=timedelta(seconds=60))


@pytest.fixture
def verifier(keys: JWKSCache, clock: Clock) -> OIDCVerifier:
    return OIDCVerifier(keys=keys, clock=clock)


def config(issuer: LocalIssuer, **overrides: Any) -> OIDCRequester:
    return OIDCRequester(issuer=issuer.url, audience=AUDIENCE, subjects=("agent-7",), **overrides)


async def refused(verifier: OIDCVerifier, token: str, issuer: OIDCRequester) -> str:
    with pytest.raises(TokenRefused) as caught:
        await verifier.verify(token, issuer=issuer)
    return str(caught.value)


async def test_rs256_token_proves_issuer_subject_and_groups(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    identity = await verifier.verify(issuer.mint(groups=["agents", "oncall"]), issuer=config(issuer))
    assert identity.subject == "agent-7"
    assert identity.groups == ("agents", "oncall")
    stamp = identity.to_stamp()
    assert stamp.username == f"oidc:{issuer.url}#agent-7"
    assert stamp.proven_by is ProofKind.OIDC and stamp.issuer == issuer.url


async def test_es256_token_is_accepted(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    identity = await verifier.verify(issuer.mint(alg="ES256"), issuer=config(issuer))
    assert identity.subject == "agent-7"


async def test_groups_come_from_the_configured_claim(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(groups=["agents"], roles="release-bot")
    identity = await verifier.verify(token, issuer=config(issuer, groups_claim="roles"))
    assert identity.groups == ("release-bot",)


# --- attacks ----------------------------------------------------------------------------------------


async def test_alg_none_is_refused_before_any_key_is_fetched(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = unsigned_token(issuer.claims(), header={"alg": "none", "typ": "JWT", "kid": "rsa-1"})
    reason = await refused(verifier, token, config(issuer))
    allowed = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"
    assert reason == f"algorithm 'none' is not allowed for issuer {issuer.url} (allowed: {allowed})"
    assert issuer.jwks_requests == 0


async def test_hmac_signed_with_the_issuers_public_key_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = hmac_token(issuer.claims(), secret=issuer.public_pem(), kid="rsa-1")
    assert "algorithm 'HS256' is not allowed" in await refused(verifier, token, config(issuer))


async def test_hmac_is_refused_even_if_the_policy_lists_it(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = hmac_token(issuer.claims(), secret=issuer.public_pem(), kid="rsa-1")
    reason = await refused(verifier, token, config(issuer, algorithms=("HS256", "RS256")))
    assert reason.endswith("(allowed: RS256)")


async def test_algorithm_outside_the_issuers_allowlist_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    reason = await refused(verifier, issuer.mint(alg="RS256"), config(issuer, algorithms=("ES256",)))
    assert "algorithm 'RS256' is not allowed" in reason


async def test_unknown_kid_is_refused_after_one_refetch_at_most(
    issuer: LocalIssuer, verifier: OIDCVerifier, clock: Clock
) -> None:
    await verifier.verify(issuer.mint(), issuer=config(issuer))
    assert issuer.jwks_requests == 1
    forged = issuer.mint(kid="attacker-1", key=rsa_key("attacker"))
    clock.now += timedelta(seconds=61)  # the refetch interval has passed: one refetch is allowed
    assert "unknown signing key id (kid) 'attacker-1'" in await refused(verifier, forged, config(issuer))
    assert issuer.jwks_requests == 2
    for _ in range(5):  # a stream of made-up kids does not turn into a stream of fetches
        await refused(verifier, issuer.mint(kid="attacker-1", key=rsa_key("attacker")), config(issuer))
    assert issuer.jwks_requests == 2


async def test_rotated_key_is_found_by_refetching(
    issuer: LocalIssuer, verifier: OIDCVerifier, clock: Clock
) -> None:
    await verifier.verify(issuer.mint(), issuer=config(issuer))
    issuer.published.append(public_jwk(rsa_key("rotated"), kid="rsa-2"))
    clock.now += timedelta(seconds=61)
    identity = await verifier.verify(issuer.mint(kid="rsa-2", key=rsa_key("rotated")), issuer=config(issuer))
    assert identity.subject == "agent-7"


async def test_bad_signature_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(kid="rsa-1", key=rsa_key("attacker"))
    assert await refused(verifier, token, config(issuer)) == "signature verification failed"


async def test_tampered_payload_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    header, _, signature = issuer.mint(sub="agent-7").split(".")
    forged_payload = b64(json.dumps(issuer.claims(sub="admin")).encode())
    reason = await refused(verifier, f"{header}.{forged_payload}.{signature}", config(issuer))
    assert reason == "signature verification failed"


async def test_key_of_the_wrong_family_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(alg="ES256", kid="rsa-1", key=ec_key("ec-1"))
    assert "is of type 'RSA', not EC" in await refused(verifier, token, config(issuer))


async def test_wrong_issuer_claim_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(iss="https://accounts.example.com")
    assert "issuer 'https://accounts.example.com' is not" in await refused(verifier, token, config(issuer))


async def test_wrong_audience_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    reason = await refused(verifier, issuer.mint(aud="someone-else"), config(issuer))
    assert reason == "audience 'someone-else' does not include 'jitgrant'"


async def test_missing_audience_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    assert await refused(verifier, issuer.mint(aud=None), config(issuer)) == "token has no 'aud' claim"


async def test_missing_expiry_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    reason = await refused(verifier, issuer.mint(exp=None), config(issuer))
    assert reason == "token has no 'exp' claim; tokens without an expiry are refused"


async def test_expired_token_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(exp=int(time.time()) - 120, iat=int(time.time()) - 600, nbf=None)
    assert (await refused(verifier, token, config(issuer))).startswith("token expired at ")


async def test_expiry_within_the_leeway_is_accepted(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(exp=int(time.time()) - 5)
    assert (await verifier.verify(token, issuer=config(issuer))).subject == "agent-7"


async def test_future_nbf_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    reason = await refused(verifier, issuer.mint(nbf=int(time.time()) + 600), config(issuer))
    assert "('nbf' is in the future)" in reason


async def test_future_iat_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    reason = await refused(verifier, issuer.mint(iat=int(time.time()) + 600, nbf=None), config(issuer))
    assert reason.startswith("token was issued in the future")


async def test_replayed_jti_is_refused_until_it_expires(
    issuer: LocalIssuer, verifier: OIDCVerifier, clock: Clock
) -> None:
    exp = int(time.time()) + 120
    first = issuer.mint(jti="once", exp=exp)
    again = issuer.mint(jti="once", exp=exp, groups=["other"])  # a different token, the same jti
    await verifier.verify(first, issuer=config(issuer))
    assert "already used (replayed 'jti')" in await refused(verifier, again, config(issuer))
    assert "already used" in await refused(verifier, first, config(issuer))
    clock.now += timedelta(seconds=200)  # past exp + leeway: the token itself is now refused anyway
    assert (await refused(verifier, first, config(issuer))).startswith("token expired")


async def test_token_without_jti_cannot_be_used_twice(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(jti=None)
    await verifier.verify(token, issuer=config(issuer))
    assert "already used" in await refused(verifier, token, config(issuer))


async def test_dry_run_does_not_use_up_a_token(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint()
    await verifier.verify(token, issuer=config(issuer), consume=False)
    await verifier.verify(token, issuer=config(issuer))
    with pytest.raises(TokenRefused, match="already used"):
        await verifier.verify(token, issuer=config(issuer), consume=False)


async def test_token_without_kid_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = jwt.encode(issuer.claims(), rsa_key("rsa-1"), algorithm="RS256")
    assert "no 'kid'" in await refused(verifier, token, config(issuer))


async def test_garbage_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    assert "not a well-formed JWT" in await refused(verifier, "not-a-token", config(issuer))


async def test_discovery_naming_another_issuer_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    issuer.discovery_issuer = "https://evil.example.com"
    reason = await refused(verifier, issuer.mint(), config(issuer))
    assert "names issuer 'https://evil.example.com'; they must match" in reason


async def test_plain_http_issuer_is_refused(verifier: OIDCVerifier) -> None:
    plain = OIDCRequester(issuer="http://127.0.0.1:1", audience=AUDIENCE, subjects=("agent-7",))
    token = jwt.encode({"iss": plain.issuer}, ec_key("ec-1"), algorithm="ES256", headers={"kid": "ec-1"})
    assert "is not an https URL" in await refused(verifier, token, plain)


async def test_issuer_whose_certificate_is_not_trusted_is_refused(issuer: LocalIssuer, clock: Clock) -> None:
    untrusting = OIDCVerifier(keys=JWKSCache(clock=clock), clock=clock)  # system CAs only
    assert "failed" in await refused(untrusting, issuer.mint(), config(issuer))


def test_replay_cache_refuses_when_full_rather_than_forgetting() -> None:
    clock = Clock()
    cache = ReplayCache(clock=clock, max_entries=2)
    later = clock.now + timedelta(minutes=5)
    cache.remember("a", expires_at=later)
    cache.remember("b", expires_at=later)
    with pytest.raises(ValueError, match="too many unexpired tokens"):
        cache.remember("c", expires_at=later)
    clock.now += timedelta(minutes=6)
    cache.remember("c", expires_at=clock.now + timedelta(minutes=5))
    assert len(cache) == 1
