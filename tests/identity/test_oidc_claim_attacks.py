"""Issue 11 §7: tokens that were accepted and must not be. Each is validly signed by the trusted
issuer (so only the claim checks can refuse it) and is refused with the reason shown."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from jitgrant.identity.claims import MAX_TOKEN_BYTES
from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier, TokenRefused, unverified_issuer
from jitgrant.models import OIDCRequester

from .issuer import AUDIENCE, LocalIssuer, b64, local_issuer


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[LocalIssuer]:
    async with local_issuer(tmp_path / "issuer") as running:
        yield running


@pytest.fixture
def verifier(issuer: LocalIssuer) -> OIDCVerifier:
    return OIDCVerifier(
        keys=JWKSCache(ssl_context=issuer.ssl_context(), refetch_interval=timedelta(seconds=60))
    )


def config(issuer: LocalIssuer, **overrides: Any) -> OIDCRequester:
    return OIDCRequester(issuer=issuer.url, audience=AUDIENCE, subjects=("agent-7",), **overrides)


async def refusal(verifier: OIDCVerifier, token: str, issuer: OIDCRequester) -> str:
    with pytest.raises(TokenRefused) as caught:
        await verifier.verify(token, issuer=issuer)
    return str(caught.value)


def signed_raw(issuer: LocalIssuer, payload_json: str) -> str:
    """RS256 over a payload written by hand, so it can hold what json.dumps never writes."""
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    signing_input = f"{header}.{b64(payload_json.encode())}"
    signature = issuer.keys["rsa-1"].sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


# --- aud / azp (OpenID Connect Core 3.1.3.7) ------------------------------------------------------


async def test_a_token_for_us_and_another_audience_without_azp_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = issuer.mint(aud=[AUDIENCE, "billing-service"])
    reason = await refusal(verifier, token, config(issuer))
    assert reason == (
        f"token has several audiences ['{AUDIENCE}', 'billing-service'] and no 'azp'; a multi-audience "
        f"token is accepted only when 'azp' is '{AUDIENCE}'"
    )


async def test_a_multi_audience_token_whose_azp_is_us_is_accepted(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    identity = await verifier.verify(
        issuer.mint(aud=[AUDIENCE, "billing-service"], azp=AUDIENCE), issuer=config(issuer)
    )
    assert identity.subject == "agent-7"


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE, "billing-service"]])
async def test_a_token_issued_to_another_client_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier, aud: Any
) -> None:
    reason = await refusal(verifier, issuer.mint(aud=aud, azp="billing-service"), config(issuer))
    assert reason == f"token was issued to client 'billing-service' ('azp'), not to '{AUDIENCE}'"


# --- size ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kilobytes", [27, 88])
async def test_an_oversized_token_is_refused_before_it_is_parsed(
    issuer: LocalIssuer, verifier: OIDCVerifier, kilobytes: int
) -> None:
    groups = [f"group-{n:05d}" for n in range(kilobytes * 1024 // 13)]
    token = issuer.mint(groups=groups)
    assert len(token) > kilobytes * 1024
    reason = await refusal(verifier, token, config(issuer))
    assert reason == f"token is {len(token)} bytes; tokens over {MAX_TOKEN_BYTES} bytes are refused unread"
    # The webhook reads `iss` first to pick the issuer entry: that is refused unread too.
    with pytest.raises(TokenRefused, match="refused unread"):
        unverified_issuer(token)


async def test_a_token_just_under_the_limit_is_read(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(groups=[f"group-{n:05d}" for n in range(700)])
    assert 8 * 1024 < len(token) <= MAX_TOKEN_BYTES
    assert (await verifier.verify(token, issuer=config(issuer))).subject == "agent-7"


# --- duplicate keys --------------------------------------------------------------------------------


async def test_a_signed_payload_with_a_second_sub_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    claims = issuer.claims(sub="someone-else")
    body = json.dumps(claims)
    # The issuer signed sub "someone-else"; a parser keeping the last value would read "agent-7".
    payload = body[:-1] + ', "sub": "agent-7"}'
    token = signed_raw(issuer, payload)
    reason = await refusal(verifier, token, config(issuer))
    assert reason == "token repeats the key 'sub'; JSON with duplicate keys is refused"


async def test_a_duplicate_key_in_a_nested_object_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    payload = json.dumps(issuer.claims())[:-1] + ', "ext": {"role": "a", "role": "b"}}'
    reason = await refusal(verifier, signed_raw(issuer, payload), config(issuer))
    assert reason == "token repeats the key 'role'; JSON with duplicate keys is refused"


async def test_the_same_payload_without_the_duplicate_is_accepted(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = signed_raw(issuer, json.dumps(issuer.claims()))
    assert (await verifier.verify(token, issuer=config(issuer))).subject == "agent-7"


# --- the system: prefix ----------------------------------------------------------------------------


async def test_a_system_subject_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(sub="system:kube-controller-manager")
    reason = await refusal(verifier, token, config(issuer))
    assert reason == (
        "claims 'system:kube-controller-manager' use Kubernetes' reserved 'system:' prefix and are refused "
        "(the policy's issuer entry would need dangerouslyAllowSystemClaims: true)"
    )


async def test_a_system_group_is_refused(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(groups=["agents", "system:masters"])
    reason = await refusal(verifier, token, config(issuer))
    assert "claims 'system:masters' use Kubernetes' reserved 'system:' prefix and are refused" in reason


async def test_the_opt_in_accepts_system_claims(issuer: LocalIssuer, verifier: OIDCVerifier) -> None:
    token = issuer.mint(groups=["system:ops"])
    entry = config(issuer, dangerously_allow_system_claims=True)
    assert (await verifier.verify(token, issuer=entry)).groups == ("system:ops",)


def test_a_policy_naming_a_system_subject_without_the_opt_in_is_invalid() -> None:
    with pytest.raises(ValueError, match="reserved 'system:' prefix"):
        OIDCRequester(issuer="https://idp.example", audience=AUDIENCE, groups=("system:authenticated",))


# --- Issue 20 §4: one token, several spellings ------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respelled(token: str, index: int, change: Any) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def with_trailing_bits(segment: str) -> str:
    """The same bytes with non-zero bits after the last whole byte (the decoder drops them)."""
    unused = {2: 4, 3: 2}[len(segment) % 4]  # 2 chars carry 1 byte (+4 bits), 3 carry 2 (+2 bits)
    last = ALPHABET.index(segment[-1])
    return segment[:-1] + ALPHABET[last | ((1 << unused) - 1)]


def segment_with_spare_bits(issuer: LocalIssuer) -> tuple[str, int]:
    """A jti-less token and the index of a segment whose length leaves spare bits to flip."""
    for attempt in range(64):
        token = issuer.mint(jti=None, nonce="x" * attempt)
        for index, segment in enumerate(token.split(".")):
            if len(segment) % 4 in (2, 3):
                return token, index
    raise AssertionError("no segment with spare bits")


async def test_a_replayed_token_with_padding_appended_to_its_signature_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token = issuer.mint(jti=None)
    await verifier.verify(token, issuer=config(issuer))
    again = respelled(token, 2, lambda signature: signature + "==")
    reason = await refusal(verifier, again, config(issuer))
    assert reason == (
        "token's signature is not canonical base64url: it has '=' padding, which JWS leaves out "
        "(RFC 7515 section 2)"
    )


@pytest.mark.parametrize("index, what", [(0, "header"), (1, "payload"), (2, "signature")])
async def test_padding_in_any_segment_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier, index: int, what: str
) -> None:
    token = respelled(issuer.mint(), index, lambda segment: segment + "=")
    assert await refusal(verifier, token, config(issuer)) == (
        f"token's {what} is not canonical base64url: it has '=' padding, which JWS leaves out "
        "(RFC 7515 section 2)"
    )


@pytest.mark.parametrize("alien", ["+", "/", " ", "\n", "é"])
async def test_characters_outside_base64url_are_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier, alien: str
) -> None:
    token = respelled(issuer.mint(), 2, lambda segment: segment[:10] + alien + segment[10:])
    assert await refusal(verifier, token, config(issuer)) == (
        "token's signature is not canonical base64url: it has characters outside A-Z a-z 0-9 '-' '_'"
    )


async def test_non_zero_trailing_bits_are_refused_and_the_same_bytes_are_not_a_new_token(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    token, index = segment_with_spare_bits(issuer)
    what = ("header", "payload", "signature")[index]
    await verifier.verify(token, issuer=config(issuer))
    again = respelled(token, index, with_trailing_bits)
    assert again != token
    assert await refusal(verifier, again, config(issuer)) == (
        f"token's {what} is not canonical base64url: its last character has non-zero trailing bits"
    )


async def test_a_replayed_es256_token_with_its_signature_remade_as_r_n_minus_s_is_refused(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    """ECDSA is malleable: (r, n - s) verifies too and anyone can compute it, so a replay set keyed
    on the signature bytes would take it as a new token. The key is the signed content instead."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order
    token = issuer.mint(jti=None, alg="ES256")
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = f"{header}.{payload}.{b64(r + (n - s).to_bytes(32, 'big'))}"
    await verifier.verify(token, issuer=config(issuer))
    reason = await refusal(verifier, twin, config(issuer))
    assert reason == "token was already used (replayed 'jti'); get a fresh token"


async def test_tokens_with_a_jti_are_remembered_by_issuer_and_jti(
    issuer: LocalIssuer, verifier: OIDCVerifier
) -> None:
    first = issuer.mint(jti="once")
    second = issuer.mint(jti="once", nonce="different signed content")
    await verifier.verify(first, issuer=config(issuer))
    assert await refusal(verifier, second, config(issuer)) == (
        "token was already used (replayed 'jti'); get a fresh token"
    )
