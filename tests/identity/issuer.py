"""A local OIDC issuer for tests: discovery and JWKS over HTTPS on 127.0.0.1, with keys made here.

Nothing is mocked: the operator's JWKS adapter fetches these documents over TLS like it would from
Okta, Azure AD, Google or the EKS service-account issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jitgrant_testing.tls import WebhookTLS, client_ssl_context, generate_webhook_tls

AUDIENCE = "jitgrant"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, kid: str, **extra: str
) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    else:
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig", **extra}


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


@dataclass
class LocalIssuer:
    """An OIDC issuer at https://127.0.0.1:<port> with an RSA key "rsa-1" and an EC key "ec-1"."""

    url: str
    tls: WebhookTLS
    keys: dict[str, Any] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    jwks_requests: int = 0
    discovery_issuer: str | None = None  # to publish a discovery document naming another issuer

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.tls)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "agent-7",
            "groups": ["agents"],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        base.update(overrides)
        return {key: value for key, value in base.items() if value is not None}

    def mint(self, *, alg: str = "RS256", kid: str | None = None, key: Any = None, **claims: Any) -> str:
        kid = kid if kid is not None else ("rsa-1" if alg.startswith(("RS", "PS")) else "ec-1")
        signing_key = key if key is not None else self.keys.get(kid)
        return jwt.encode(self.claims(**claims), signing_key, algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid: str = "rsa-1") -> bytes:
        key = self.keys[kid]
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@asynccontextmanager
async def local_issuer(directory: Path) -> AsyncIterator[LocalIssuer]:
    tls = generate_webhook_tls(directory, hosts=["127.0.0.1"])
    issuer = LocalIssuer(url="", tls=tls)
    issuer.keys = {"rsa-1": rsa_key("rsa-1"), "ec-1": ec_key("ec-1")}
    issuer.published = [
        public_jwk(issuer.keys["rsa-1"], kid="rsa-1"),
        public_jwk(issuer.keys["ec-1"], kid="ec-1"),
    ]

    async def discovery(_: web.Request) -> web.Response:
        return web.json_response(
            {"issuer": issuer.discovery_issuer or issuer.url, "jwks_uri": f"{issuer.url}/keys"}
        )

    async def keys(_: web.Request) -> web.Response:
        issuer.jwks_requests += 1
        return web.json_response({"keys": issuer.published})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.certfile), str(tls.pkeyfile))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    issuer.url = f"https://127.0.0.1:{port}"
    try:
        yield issuer
    finally:
        await runner.cleanup()
