"""Verifying an OIDC ID token against an issuer named in a GrantPolicy.

Order matters: the algorithm in the token header is checked against the issuer's allowlist (asymmetric
algorithms only) *before* any key is looked up, the key is chosen by `kid` from the issuer's JWKS and
must be of the family the algorithm needs, pyjwt checks the signature with exactly that one algorithm,
and only then are the claims checked (`jitgrant.identity.claims`) and the token remembered against
replay. Nothing unverified ever reaches the replay cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
from jwt.exceptions import InvalidKeyError, InvalidSignatureError, PyJWKError, PyJWTError

from jitgrant.identity.claims import (
    DEFAULT_LEEWAY,
    ClaimError,
    ReplayCache,
    VerifiedIdentity,
    allowed_algorithms,
    check_claims,
    check_token_shape,
    replay_key_for,
)
from jitgrant.models import OIDCRequester
from jitgrant.models.policy import CABundleRef

_KEY_TYPE_FOR_ALGORITHM = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}

# Claim checks are ours (claims.py, with an injected clock); pyjwt only checks the signature.
_SIGNATURE_ONLY: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


class TokenRefused(Exception):
    """The token does not prove an identity; the message says why, for the person who sent it."""


class KeySource(Protocol):
    async def key(
        self, issuer: str, kid: str, *, ca_bundle: CABundleRef | None = None
    ) -> Mapping[str, Any]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def unverified_issuer(token: str) -> str:
    """The `iss` a token claims, to choose which configured issuer to verify it against. Not proof."""
    _check_shape(token)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except PyJWTError as error:
        raise TokenRefused(f"token is not a well-formed JWT ({error})") from error
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TokenRefused("token has no 'iss' claim")
    return iss


def _check_shape(token: str) -> None:
    try:
        check_token_shape(token)
    except ClaimError as error:
        raise TokenRefused(str(error)) from error


def _check_key(jwk: Mapping[str, Any], *, alg: str, issuer: str) -> None:
    expected = _KEY_TYPE_FOR_ALGORITHM.get(alg[:2])
    if jwk.get("kty") != expected:
        raise TokenRefused(
            f"key {jwk.get('kid')!r} of {issuer} is of type {jwk.get('kty')!r}, not {expected} ({alg})"
        )
    if "alg" in jwk and jwk["alg"] != alg:
        raise TokenRefused(f"key {jwk.get('kid')!r} of {issuer} is for {jwk['alg']}, not {alg}")
    if "use" in jwk and jwk["use"] != "sig":
        raise TokenRefused(f"key {jwk.get('kid')!r} of {issuer} is not a signing key (use={jwk['use']!r})")


class OIDCVerifier:
    """Verifies ID tokens; holds the replay cache, so keep one per operator process."""

    def __init__(
        self,
        *,
        keys: KeySource,
        clock: Callable[[], datetime] = _utcnow,
        leeway: timedelta = DEFAULT_LEEWAY,
        replay: ReplayCache | None = None,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._leeway = leeway
        self.replay = replay if replay is not None else ReplayCache(clock=clock, leeway=leeway)

    async def verify(self, token: str, *, issuer: OIDCRequester, consume: bool = True) -> VerifiedIdentity:
        """The identity the token proves for this issuer, or TokenRefused.

        With `consume=False` (dry runs) a token already used is refused but this use is not remembered.
        """
        _check_shape(token)  # size first: nothing bigger than MAX_TOKEN_BYTES is parsed at all
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as error:
            raise TokenRefused(f"token is not a well-formed JWT ({error})") from error
        alg = header.get("alg")
        allowed = allowed_algorithms(issuer)
        if not isinstance(alg, str) or alg not in allowed:
            listed = ", ".join(allowed) or "none"
            raise TokenRefused(
                f"algorithm {alg!r} is not allowed for issuer {issuer.issuer} (allowed: {listed})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefused("token header has no 'kid'; the signing key cannot be chosen")
        try:
            jwk = await self._keys.key(issuer.issuer, kid, ca_bundle=issuer.ca_bundle)
        except Exception as error:  # the adapter's errors (JWKSError, network) all mean "no key"
            raise TokenRefused(str(error) or type(error).__name__) from error
        _check_key(jwk, alg=alg, issuer=issuer.issuer)
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
        except (InvalidKeyError, PyJWKError) as error:
            raise TokenRefused(f"key {kid!r} of {issuer.issuer} is not usable: {error}") from error
        try:
            claims = jwt.decode(token, key=key.key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except InvalidSignatureError as error:
            raise TokenRefused("signature verification failed") from error
        except PyJWTError as error:
            raise TokenRefused(f"token could not be verified: {error}") from error
        try:
            identity = check_claims(
                claims,
                issuer=issuer,
                now=self._clock(),
                replay_key=replay_key_for(claims=claims, token=token),
                leeway=self._leeway,
            )
            if consume:
                self.replay.remember(identity.replay_key, expires_at=identity.expires_at)
            elif self.replay.seen(identity.replay_key):
                raise ClaimError("token was already used (replayed 'jti'); get a fresh token")
        except ClaimError as error:
            raise TokenRefused(str(error)) from error
        return identity
