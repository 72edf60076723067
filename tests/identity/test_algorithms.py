"""What mainstream identity providers sign with is accepted by default; `none` and HMAC never are.

Each algorithm with a real key made by `cryptography`, published in the local issuer's JWKS, the
token verified under a policy that lists no algorithms (the default). Before, the default was RS256
and ES256 only: an IdP rotated to ES512, EdDSA or PS256 refused every agent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused
from jitgrant.models import OIDCRequester
from jitgrant.models.policy import DEFAULT_OIDC_ALGORITHMS

from .issuer import AUDIENCE, LocalIssuer, hmac_token, local_issuer, unsigned_token


def _key(alg: str, curve: str | None = None) -> Any:
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg.startswith("ES"):
        return ec.generate_private_key(
            {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
        )
    return ed448.Ed448PrivateKey.generate() if curve == "Ed448" else ed25519.Ed25519PrivateKey.generate()


def _jwk(alg: str, key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    if alg.startswith(("RS", "PS")):
        data = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    elif alg.startswith("ES"):
        data = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    return {**data, "kid": kid, "use": "sig", "alg": alg}


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    async with local_issuer(tmp_path / "issuer") as running:
        yield running


def _config(issuer: LocalIssuer, **overrides: Any) -> OIDCRequester:
    return OIDCRequester(issuer=issuer.url, audience=AUDIENCE, subjects=("agent-7",), **overrides)


def test_the_default_covers_rsa_pss_ec_and_eddsa() -> None:
    assert OIDCRequester(issuer="https://idp", audience="a").algorithms == DEFAULT_OIDC_ALGORITHMS
    assert set(DEFAULT_OIDC_ALGORITHMS) == {
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("alg", "curve"),
    [(alg, None) for alg in DEFAULT_OIDC_ALGORITHMS] + [("EdDSA", "Ed448")],
    ids=[*DEFAULT_OIDC_ALGORITHMS, "EdDSA-Ed448"],
)
async def test_a_token_signed_with_each_default_algorithm_is_accepted(
    issuer: LocalIssuer, alg: str, curve: str | None
) -> None:
    key = _key(alg, curve)
    kid = f"{alg}-{curve or 'key'}"
    issuer.published.append(_jwk(alg, key, kid))
    verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context()))
    token = jwt.encode(issuer.claims(sub="agent-7"), key, algorithm=alg, headers={"kid": kid})
    identity = await verifier.verify(token, issuer=_config(issuer))
    assert identity.subject == "agent-7"


async def test_a_policy_can_still_narrow_the_list(issuer: LocalIssuer) -> None:
    key = _key("ES512")
    issuer.published.append(_jwk("ES512", key, "es512"))
    verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context()))
    token = jwt.encode(issuer.claims(sub="agent-7"), key, algorithm="ES512", headers={"kid": "es512"})
    with pytest.raises(TokenRefused, match=r"algorithm 'ES512' is not allowed .* \(allowed: RS256\)"):
        await verifier.verify(token, issuer=_config(issuer, algorithms=("RS256",)))


async def test_a_key_published_for_one_algorithm_is_not_used_with_another(issuer: LocalIssuer) -> None:
    key = _key("RS256")
    issuer.published.append(_jwk("PS256", key, "ps-only"))
    verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context()))
    token = jwt.encode(issuer.claims(sub="agent-7"), key, algorithm="RS256", headers={"kid": "ps-only"})
    with pytest.raises(TokenRefused, match="is for PS256, not RS256"):
        await verifier.verify(token, issuer=_config(issuer))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_is_refused_even_when_the_policy_lists_it(issuer: LocalIssuer, alg: str) -> None:
    """The classic confusion: HMAC keyed with the issuer's public key, which anyone can fetch."""
    secret = issuer.public_pem()
    token = jwt.api_jws.PyJWS().encode(
        json.dumps(issuer.claims(sub="agent-7")).encode(),
        b"x" * 64,
        algorithm=alg,
        headers={"kid": "rsa-1"},
    )
    verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context()))
    for candidate in (token, hmac_token(issuer.claims(sub="agent-7"), secret=secret, kid="rsa-1")):
        with pytest.raises(TokenRefused, match="is not allowed for issuer"):
            await verifier.verify(candidate, issuer=_config(issuer, algorithms=(alg, "HS256", "RS256")))
    assert issuer.jwks_requests == 0  # refused before any key was looked up


async def test_none_is_refused_even_when_the_policy_lists_it(issuer: LocalIssuer) -> None:
    token = unsigned_token(issuer.claims(sub="agent-7"), header={"alg": "none", "kid": "rsa-1"})
    verifier = OIDCVerifier(keys=JWKSCache(ssl_context=issuer.ssl_context()))
    with pytest.raises(TokenRefused, match="algorithm 'none' is not allowed"):
        await verifier.verify(token, issuer=_config(issuer, algorithms=("none", "RS256")))
