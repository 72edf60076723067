"""One local OIDC issuer for the demo and the tests: discovery and JWKS over HTTPS on 127.0.0.1.

Nothing is mocked: the operator's JWKS adapter fetches these documents over TLS as it would from
Okta, Azure AD, Google or the EKS service-account issuer. Tests reach into `keys`, `published` and
`discovery_issuer` to stage attacks (rotated keys, a discovery document naming another issuer).
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jitgrant.identity.jwks import JWKSCache
from jitgrant.identity.oidc import OIDCVerifier
from jitgrant_testing.tls import WebhookTLS, client_ssl_context, generate_webhook_tls

AUDIENCE = "jitgrant"
RSA_KID = "rsa-1"
EC_KID = "ec-1"


def public_jwk(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, kid: str, **extra: str
) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", **extra}


@dataclass
class OIDCIssuer:
    """An issuer with an RSA key `rsa-1` and an EC key `ec-1`, both published in its JWKS."""

    directory: Path
    url: str = ""
    default_claims: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    jwks_requests: int = 0
    discovery_issuer: str | None = None  # publish a discovery document naming another issuer
    jwks_headers: dict[str, str] = field(default_factory=dict)  # e.g. Cache-Control on the JWKS
    tls: WebhookTLS = field(init=False, repr=False)
    _runner: web.AppRunner | None = field(init=False, default=None, repr=False)

    async def start(self) -> None:
        if not self.keys:
            self.keys = {
                RSA_KID: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                EC_KID: ec.generate_private_key(ec.SECP256R1()),
            }
        if not self.published:
            self.published = [public_jwk(key, kid=kid) for kid, key in self.keys.items()]
        self.tls = generate_webhook_tls(self.directory, hosts=["127.0.0.1"])

        async def discovery(_: web.Request) -> web.Response:
            return web.json_response(
                {"issuer": self.discovery_issuer or self.url, "jwks_uri": f"{self.url}/keys"}
            )

        async def jwks(_: web.Request) -> web.Response:
            self.jwks_requests += 1
            return web.json_response({"keys": self.published}, headers=self.jwks_headers)

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/keys", jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.tls.certfile), str(self.tls.pkeyfile))
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.url = f"https://127.0.0.1:{int(self._runner.addresses[0][1])}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.tls)

    def verifier(self) -> OIDCVerifier:
        """What the operator verifies tokens with: JWKS over TLS, trusting this issuer's CA."""
        return OIDCVerifier(keys=JWKSCache(ssl_context=self.ssl_context()))

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Valid claims for five minutes; an override of None drops that claim."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **self.default_claims,
        }
        base.update(overrides)
        return {key: value for key, value in base.items() if value is not None}

    def mint(
        self,
        subject: str | None = None,
        *,
        audience: str | None = None,
        lifetime: int | None = None,
        alg: str = "RS256",
        kid: str | None = None,
        key: Any = None,
        **claims: Any,
    ) -> str:
        if subject is not None:
            claims["sub"] = subject
        if audience is not None:
            claims["aud"] = audience
        if lifetime is not None:
            claims["exp"] = int(time.time()) + lifetime
        kid = kid if kid is not None else (RSA_KID if alg.startswith(("RS", "PS")) else EC_KID)
        signing_key: Any = key if key is not None else self.keys[kid]
        return jwt.encode(self.claims(**claims), signing_key, algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid: str = RSA_KID) -> bytes:
        return bytes(
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def requester(self, *subjects: str) -> dict[str, Any]:
        """The `requesters.oidc` entry of a GrantPolicy admitting these subjects of this issuer."""
        return {"issuer": self.url, "audience": AUDIENCE, "subjects": list(subjects)}


@asynccontextmanager
async def running_issuer(directory: Path, **options: Any) -> AsyncIterator[OIDCIssuer]:
    issuer = OIDCIssuer(directory=directory, **options)
    await issuer.start()
    try:
        yield issuer
    finally:
        await issuer.stop()
