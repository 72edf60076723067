"""One local OIDC issuer for the demo and the tests: discovery and JWKS over HTTPS on 127.0.0.1, and
for the console's sign-in an authorization endpoint and a token endpoint (authorization code with
PKCE, S256 only), which log in whoever `signed_in` names, as if they had passed the IdP's own login.

Nothing is mocked: the operator's JWKS adapter fetches these documents over TLS as it would from
Okta, Azure AD, Google or the EKS service-account issuer. Tests reach into `keys`, `published` and
`discovery_issuer` to stage attacks (rotated keys, a discovery document naming another issuer).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jitgrant.identity.claims import ReplayCache
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
    # Hold JWKS answers (taken when asked) until set: a fetch in flight while the test acts.
    jwks_gate: asyncio.Event | None = None
    # The console's sign-in: client_id -> its one registered redirect URI; the claims of the person
    # the IdP has authenticated (sub, email, groups); overrides for the next ID tokens (a wrong
    # audience, a short lifetime in seconds as "lifetime").
    clients: dict[str, str] = field(default_factory=dict)
    signed_in: dict[str, Any] = field(default_factory=dict)
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    _codes: dict[str, dict[str, Any]] = field(init=False, default_factory=dict, repr=False)
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
                {
                    "issuer": self.discovery_issuer or self.url,
                    "jwks_uri": f"{self.url}/keys",
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def jwks(_: web.Request) -> web.Response:
            self.jwks_requests += 1
            keys = [dict(jwk) for jwk in self.published]
            if self.jwks_gate is not None:
                await self.jwks_gate.wait()
            return web.json_response({"keys": keys}, headers=self.jwks_headers)

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/keys", jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.tls.certfile), str(self.tls.pkeyfile))
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.url = f"https://127.0.0.1:{int(self._runner.addresses[0][1])}"

    async def _authorize(self, request: web.Request) -> web.Response:
        """The authorization endpoint: checks the client, its redirect URI and PKCE, then (the person
        in `signed_in` having logged in) redirects back with a one-time code."""
        query = request.query
        client_id, redirect = query.get("client_id", ""), query.get("redirect_uri", "")
        if self.clients.get(client_id) != redirect or not redirect:
            return web.json_response(
                {"error": "invalid_request", "error_description": "unknown client"}, status=400
            )
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise web.HTTPFound(f"{redirect}?error=unsupported_response_type&state={query.get('state', '')}")
        if not self.signed_in or not query.get("code_challenge"):
            raise web.HTTPFound(f"{redirect}?error=access_denied&state={query.get('state', '')}")
        code = secrets.token_urlsafe(24)
        self._codes[code] = {
            "client_id": client_id,
            "redirect_uri": redirect,
            "challenge": query["code_challenge"],
            "nonce": query.get("nonce"),
            "claims": dict(self.signed_in),
        }
        raise web.HTTPFound(f"{redirect}?{urlencode({'code': code, 'state': query.get('state', '')})}")

    async def _token(self, request: web.Request) -> web.Response:
        """The token endpoint: a code once, for its client and redirect URI, with the PKCE verifier."""
        form = await request.post()
        grant = self._codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant["client_id"]
            or form.get("redirect_uri") != grant["redirect_uri"]
            or digest != grant["challenge"]
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        overrides = dict(self.id_token_overrides)
        lifetime = overrides.pop("lifetime", 300)
        claims = {"aud": grant["client_id"], "nonce": grant["nonce"], **grant["claims"], **overrides}
        token = self.mint(lifetime=int(lifetime), **claims)
        return web.json_response({"id_token": token, "token_type": "Bearer", "expires_in": lifetime})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ssl_context(self) -> ssl.SSLContext:
        return client_ssl_context(self.tls)

    def verifier(self, *, replay: ReplayCache | None = None) -> OIDCVerifier:
        """What the operator verifies tokens with: JWKS over TLS, trusting this issuer's CA. Pass the
        operator's own replay set (`runtime.oidc.replay`, Leases in the API server) to keep it."""
        return OIDCVerifier(keys=JWKSCache(ssl_context=self.ssl_context()), replay=replay)

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
