"""An OIDC issuer served by `RawHTTPServer`: Hydra-sized documents, delivered in pieces."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from jitgrant_testing.oidc import public_jwk
from jitgrant_testing.rawhttp import RawHTTPServer, Route

KID = "hydra-rsa-1"


def discovery_document(url: str) -> bytes:
    """A discovery document shaped and sized like Hydra v2.3.0's (1,864 bytes there)."""
    document = {
        "issuer": url,
        "authorization_endpoint": f"{url}/oauth2/auth",
        "token_endpoint": f"{url}/oauth2/token",
        "jwks_uri": f"{url}/.well-known/jwks.json",
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["code", "code id_token", "id_token", "token id_token", "token"],
        "claims_supported": ["sub"],
        "grant_types_supported": ["authorization_code", "implicit", "client_credentials", "refresh_token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "userinfo_endpoint": f"{url}/userinfo",
        "scopes_supported": ["offline_access", "offline", "openid"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "client_secret_basic",
            "private_key_jwt",
            "none",
        ],
        "userinfo_signing_alg_values_supported": ["none", "RS256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "id_token_signed_response_alg": ["RS256"],
        "userinfo_signed_response_alg": ["RS256"],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "claims_parameter_supported": False,
        "revocation_endpoint": f"{url}/oauth2/revoke",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "end_session_endpoint": f"{url}/oauth2/sessions/logout",
        "request_object_signing_alg_values_supported": ["none", "RS256", "ES256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "credentials_endpoint_draft_00": f"{url}/credentials",
        "credentials_supported_draft_00": [
            {
                "format": "jwt_vc_json",
                "types": ["VerifiableCredential", "UserInfoCredential"],
                "cryptographic_binding_methods_supported": ["jwk"],
                "cryptographic_suites_supported": ["PS256", "RS256", "ES256", "PS384", "RS384", "ES384"],
            }
        ],
    }
    return json.dumps(document, indent=1).encode()


class RawIssuer:
    def __init__(self, server: RawHTTPServer) -> None:
        self.server = server
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.url = ""

    def publish(self, *keys: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self.url = self.server.url
        self.server.routes["/.well-known/openid-configuration"] = Route(discovery_document(self.url))
        jwks = {"keys": list(keys) or [public_jwk(self.key, kid=KID, alg="RS256")]}
        self.server.routes["/.well-known/jwks.json"] = Route(json.dumps(jwks).encode(), headers=headers or {})

    @property
    def discovery_bytes(self) -> int:
        return len(self.server.routes["/.well-known/openid-configuration"].body)

    def mint(self, *, audience: str = "jitgrant", subject: str = "agent-1", **extra: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})


@asynccontextmanager
async def raw_issuer(directory: Path, **behaviour: Any) -> AsyncIterator[RawIssuer]:
    server = RawHTTPServer(directory, **behaviour)
    await server.start()
    issuer = RawIssuer(server)
    issuer.publish()
    try:
        yield issuer
    finally:
        await server.stop()
