"""A hanging identity provider gets jitgrant's own refusal within the fetch budget.

The old adapter waited 10 s per GET (discovery, then JWKS), as long as the API server's own webhook
timeout, so every request in that window ended as the API server's `HTTP 500 … context deadline
exceeded`. Now discovery and JWKS together get `identity_fetch_budget` (3 s by default); the
figure is measured here against a server that accepts and never answers, one that completes TLS and
stalls, and one that answers discovery and stalls the JWKS. tests/realapi checks the webhook's answer
on a real kube-apiserver.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from jitgrant.identity.jwks import IssuerUnavailable, JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused
from jitgrant.models import OIDCRequester
from jitgrant_testing.rawissuer import KID, raw_issuer

BUDGET = timedelta(seconds=3)


@pytest.mark.parametrize(
    "behaviour",
    [{"silent": True}, {"stall": True}, {"stall_paths": {"/.well-known/jwks.json"}}],
    ids=["accepts-and-never-answers", "completes-tls-and-stalls", "discovery-answers-jwks-stalls"],
)
async def test_a_hanging_idp_is_refused_within_the_budget(
    tmp_path: Path, behaviour: dict[str, object]
) -> None:
    async with raw_issuer(tmp_path, **behaviour) as issuer:
        keys = JWKSCache(ssl_context=issuer.server.ssl_context(), fetch_budget=BUDGET)
        started = time.monotonic()
        with pytest.raises(IssuerUnavailable) as refused:
            await keys.key(issuer.url, KID)
        took = time.monotonic() - started
    print(f"\nhanging IdP ({next(iter(behaviour))}): refused after {took:.2f} s: {refused.value}")
    assert str(refused.value) == f"identity provider {issuer.url} did not answer within 3 s"
    assert 2.9 <= took < 3.5


async def test_requests_arriving_while_the_idp_hangs_all_get_the_refusal_within_the_budget(
    tmp_path: Path,
) -> None:
    """Concurrent tokens share the one fetch; none waits for another's budget after its own."""
    async with raw_issuer(tmp_path, stall=True) as issuer:
        verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.server.ssl_context(), fetch_budget=BUDGET))
        config = OIDCRequester(issuer=issuer.url, audience="jitgrant", subjects=("agent-1",))

        async def one(delay: float) -> float:
            await asyncio.sleep(delay)
            started = time.monotonic()
            with pytest.raises(TokenRefused, match="did not answer within 3 s"):
                await verifier.verify(issuer.mint(), issuer=config)
            return time.monotonic() - started

        waits = await asyncio.gather(*(one(delay) for delay in (0, 0.5, 1.0, 2.0, 2.9, 3.2)))
        requests = issuer.server.requests
    print(f"\nwaits while the IdP hangs: {', '.join(f'{w:.2f}' for w in waits)} s")
    assert max(waits) < 3.5
    assert requests <= 3  # shared fetches, not one per token


async def test_the_budget_is_a_setting(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, stall=True) as issuer:
        keys = JWKSCache(ssl_context=issuer.server.ssl_context(), fetch_budget=timedelta(seconds=0.5))
        started = time.monotonic()
        with pytest.raises(IssuerUnavailable, match=r"did not answer within 0\.5 s"):
            await keys.key(issuer.url, KID)
        assert time.monotonic() - started < 1.0


async def test_a_slow_but_answering_idp_within_the_budget_is_fine(tmp_path: Path) -> None:
    async with raw_issuer(tmp_path, piece=50) as issuer:
        keys = JWKSCache(ssl_context=issuer.server.ssl_context(), fetch_budget=BUDGET)
        assert (await keys.key(issuer.url, KID))["kid"] == KID
