"""A local OIDC issuer for tests: discovery and JWKS over HTTPS on 127.0.0.1, with keys made here.

Nothing is mocked: the operator's JWKS adapter fetches these documents over TLS like it would from
Okta, Azure AD, Google or the EKS service-account issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jitgrant_testing.oidc import AUDIENCE, OIDCIssuer, public_jwk, running_issuer

__all__ = ["AUDIENCE", "LocalIssuer", "OIDCIssuer", "public_jwk"]


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(claims: dict[str, Any], *, header: dict[str, Any]) -> str:
    """A JWT with `alg: none` and an empty signature, as an attacker would hand-craft it."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_token(claims: dict[str, Any], *, secret: bytes, kid: str) -> str:
    """HS256 with the issuer's *public* key as the secret: the classic algorithm-confusion attack."""
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


LocalIssuer = OIDCIssuer


@asynccontextmanager
async def local_issuer(directory: Path) -> AsyncIterator[OIDCIssuer]:
    """The harness issuer with this module's cached keys, so a test can re-sign with `rsa_key("rsa-1")`."""
    keys = {"rsa-1": rsa_key("rsa-1"), "ec-1": ec_key("ec-1")}
    defaults = {"sub": "agent-7", "groups": ["agents"]}
    async with running_issuer(directory, keys=keys, default_claims=defaults) as issuer:
        yield issuer
