"""In-cluster sign-in: OIDC authorization code with PKCE against the issuer the API server trusts.

The console is a client of that issuer. After sign-in it holds the person's ID token in its own
memory (never in the browser: the browser holds only an HttpOnly session cookie) and makes every API
call with it, so the API server authenticates the person, not the console; the console's own
ServiceAccount has no rights over AccessRequests or GrantPolicies. The session ends when the token
does. The token's signature, issuer, audience (this client), expiry and nonce are checked here too,
so a token meant for another application is refused before it is ever sent to the API server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web

from jitgrant.client import Connection
from jitgrant.client.errors import ApiRefused, ApiUnreachable
from jitgrant.console import render
from jitgrant.console.api import UserApi

if TYPE_CHECKING:
    from jitgrant.console.app import Console

STATE_COOKIE = "jitgrant_console_oidc"
# How long a person may take at the identity provider between leaving and coming back.
LOGIN_SECONDS = 600
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class SignInRefused(Exception):
    """Why a sign-in was refused, in words for the page."""


@dataclass(frozen=True)
class _Pending:
    verifier: str
    nonce: str
    started: float


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class OidcLogin:
    issuer: str
    client_id: str
    redirect_uri: str  # the console's public URL + /oidc/callback, registered at the issuer
    connect: Callable[[str], Connection]  # an ID token -> a connection acting as its holder
    client_secret: str | None = None
    ssl_context: ssl.SSLContext | None = None  # trusts the issuer's CA
    scopes: str = "openid email profile groups"
    secure_cookies: bool = True
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _discovery: dict[str, Any] | None = None

    # -- the issuer -----------------------------------------------------------------------------
    async def _get_json(self, url: str) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context or True)) as http,
            http.get(url, timeout=aiohttp.ClientTimeout(total=15)) as response,
        ):
            if response.status != 200:
                raise SignInRefused(f"the identity provider answered {response.status} for {url}")
            body: dict[str, Any] = await response.json(content_type=None)
            return body

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            found = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if found.get("issuer") != self.issuer:
                raise SignInRefused(
                    f"the discovery document names issuer {found.get('issuer')!r}, not {self.issuer!r}"
                )
            self._discovery = found
        return self._discovery

    async def _exchange(self, code: str, verifier: str) -> str:
        endpoint = str((await self.discovery())["token_endpoint"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        auth = aiohttp.BasicAuth(self.client_id, self.client_secret) if self.client_secret else None
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl_context or True)) as http,
            http.post(endpoint, data=form, auth=auth, timeout=aiohttp.ClientTimeout(total=15)) as response,
        ):
            body = await response.json(content_type=None)
            if response.status != 200 or not isinstance(body, dict) or not body.get("id_token"):
                error = body.get("error_description") or body.get("error") if isinstance(body, dict) else body
                raise SignInRefused(
                    f"the identity provider did not issue a token ({response.status}: {error})"
                )
            return str(body["id_token"])

    async def verify(self, token: str, *, nonce: str) -> Mapping[str, Any]:
        """The ID token's claims, after checking signature, issuer, audience, expiry and nonce."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise SignInRefused(f"the ID token is not a JWT ({exc})") from exc
        keys = await self._get_json(str((await self.discovery())["jwks_uri"]))
        jwk = next((k for k in keys.get("keys") or [] if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise SignInRefused(f"the ID token's key {header.get('kid')!r} is not in the issuer's JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                jwt.PyJWK(jwk).key,
                algorithms=ALGORITHMS,
                audience=self.client_id,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.InvalidAudienceError as exc:
            audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
            raise SignInRefused(
                f"the ID token is for audience {audience!r}, not this console ({self.client_id!r})"
            ) from exc
        except jwt.PyJWTError as exc:
            raise SignInRefused(f"the ID token was refused: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise SignInRefused("the ID token's nonce is not the one this sign-in sent (a replayed token?)")
        return claims

    # -- routes ---------------------------------------------------------------------------------
    def routes(self, console: Console) -> list[web.RouteDef]:
        async def start(request: web.Request) -> web.StreamResponse:
            state, verifier, nonce = (secrets.token_urlsafe(32) for _ in range(3))
            now = time.time()
            self._pending = {k: v for k, v in self._pending.items() if now - v.started < LOGIN_SECONDS}
            self._pending[state] = _Pending(verifier=verifier, nonce=nonce, started=now)
            try:
                endpoint = str((await self.discovery())["authorization_endpoint"])
            except (SignInRefused, aiohttp.ClientError, KeyError) as exc:
                return _refused(f"the identity provider cannot be reached: {exc}", 502)
            query = urlencode(
                {
                    "response_type": "code",
                    "client_id": self.client_id,
                    "redirect_uri": self.redirect_uri,
                    "scope": self.scopes,
                    "state": state,
                    "nonce": nonce,
                    "code_challenge": _challenge(verifier),
                    "code_challenge_method": "S256",
                }
            )
            response = web.Response(status=302, headers={"Location": f"{endpoint}?{query}"})
            # The callback must come back to the browser that started it (no login CSRF).
            response.set_cookie(
                STATE_COOKIE,
                state,
                httponly=True,
                samesite="Lax",
                secure=self.secure_cookies,
                path="/oidc/",
                max_age=LOGIN_SECONDS,
            )
            return response

        async def callback(request: web.Request) -> web.StreamResponse:
            state = request.query.get("state", "")
            if request.query.get("error"):
                return _refused(f"the identity provider refused: {request.query.get('error')}", 401)
            cookie = request.cookies.get(STATE_COOKIE, "")
            pending = self._pending.pop(state, None) if state else None
            if pending is None or not secrets.compare_digest(cookie.encode(), state.encode()):
                return _refused("this sign-in was not started in this browser, or was already used", 400)
            if time.time() - pending.started > LOGIN_SECONDS:
                return _refused("this sign-in took too long; start again", 400)
            try:
                token = await self._exchange(request.query.get("code", ""), pending.verifier)
                claims = await self.verify(token, nonce=pending.nonce)
            except SignInRefused as exc:
                return _refused(str(exc), 401)
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
                return _refused(f"the identity provider could not be reached: {exc}", 502)
            api = UserApi(self.connect(token))
            try:
                await api.whoami()
            except (ApiRefused, ApiUnreachable) as exc:
                await api.close()
                return _refused(f"the Kubernetes API server did not accept your sign-in: {exc.message}", 401)
            response = web.Response(status=303, headers={"Location": "/"})
            response.del_cookie(STATE_COOKIE, path="/oidc/")
            console.start_session(response, api, expires_at=float(claims["exp"]))
            return response

        return [web.get("/oidc/login", start), web.get("/oidc/callback", callback)]

    sign_in_link = "/oidc/login"

    def sign_in_hint(self) -> str:
        return "Sign in with your organisation's identity provider."


def _refused(why: str, status: int) -> web.Response:
    return web.Response(
        text=render.bare(
            "Sign-in refused", f"Sign-in refused: {why}.", link=("/oidc/login", "Sign in again")
        ),
        status=status,
        content_type="text/html",
    )
