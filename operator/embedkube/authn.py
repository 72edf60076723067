"""Authentication: static bearer tokens, ServiceAccount tokens issued by TokenRequest, and plug-ins.

ServiceAccount tokens are ES256 JWTs (the real server takes RSA or ECDSA signing keys; EC keys are
fast to make) with the claims of the real ones (``iss``, ``sub``, ``aud``, ``exp``,
``kubernetes.io``), so code that decodes them sees the familiar shape. A token is accepted
only while it has not expired, its audience includes the API server's, and the ServiceAccount it
was issued for still exists with the same uid (the real server checks the bound object too).
"""

from __future__ import annotations

import base64
import csv
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .clock import Clock

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = "https://kubernetes.default.svc.cluster.local"
_VERIFIED_CACHE = 4096  # signature-checked ServiceAccount tokens remembered


@dataclass(frozen=True)
class User:
    """An authenticated identity, as ``user.Info`` in the API server."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def user_info(self) -> dict[str, Any]:
        """The ``userInfo`` shape of admission and review objects."""
        info: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            info["uid"] = self.uid
        if self.extra:
            info["extra"] = {k: list(v) for k, v in self.extra.items()}
        return info


def with_authenticated(user: User) -> User:
    if AUTHENTICATED in user.groups:
        return user
    return User(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


Authenticator = Callable[[str], Awaitable[User | None]]
# (namespace, name) -> uid of the live ServiceAccount, or None
ServiceAccountLookup = Callable[[str, str], str | None]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthenticator:
    def __init__(self, clock: Clock, sa_lookup: ServiceAccountLookup) -> None:
        self._clock = clock
        self._sa_lookup = sa_lookup
        # (kind, namespace, name) -> uid of a token's bound Pod/Secret/Node; the cluster sets it.
        self.bound_lookup: Callable[[str, str, str], str | None] | None = None
        self._static: dict[str, User] = {}
        self._plugins: list[Authenticator] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._verified: dict[str, dict[str, Any]] = {}
        digest = hashes.Hash(hashes.SHA256())
        digest.update(
            self._key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.key_id = _b64url(digest.finalize())  # as the real server derives "kid"

    # ---- static tokens --------------------------------------------------------------------------

    def add_static(self, token: str, user: User) -> None:
        self._static[token] = user

    def load_token_file(self, path: str | Path) -> None:
        """``--token-auth-file``: ``token,user,uid,"group1,group2"`` per line."""
        with open(path, newline="") as fh:
            for row in csv.reader(fh):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 3:
                    raise ValueError(f"token file {path}: need at least token,user,uid: {row!r}")
                groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
                self.add_static(row[0].strip(), User(row[1].strip(), row[2].strip(), groups))

    def add_plugin(self, fn: Authenticator) -> None:
        self._plugins.append(fn)

    # ---- ServiceAccount tokens --------------------------------------------------------------------

    def issue_sa_token(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str],
        expires: datetime,
        bound: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(self._clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": audiences,
            "exp": int(expires.timestamp()),
            "iat": now,
            "nbf": now,
            "jti": secrets.token_hex(16),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        if bound:
            claims["kubernetes.io"][bound["kind"].lower()] = {
                "name": bound.get("name"),
                "uid": bound.get("uid"),
            }
        header = {"alg": "ES256", "kid": self.key_id, "typ": "JWT"}
        compact = (",", ":")  # as real JWTs: no whitespace
        header_part = _b64url(json.dumps(header, separators=compact).encode())
        signing_input = f"{header_part}.{_b64url(json.dumps(claims, separators=compact).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r||s, not DER
        return f"{signing_input}.{_b64url(signature)}"

    def _signed_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed, or None. The signature check (~0.1 ms of ECDSA
        on every request) is done once per token; expiry, audience and the ServiceAccount are
        checked on every use by the caller, so a cached token still stops working when it should."""
        claims = self._verified.get(token)
        if claims is not None:
            return claims
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            raw = _b64url_decode(parts[2])
            if len(raw) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            self._key.public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_b64url_decode(parts[1]))
        except Exception:  # any malformed or foreign JWT is simply not ours
            return None
        if not isinstance(claims, dict):
            return None
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.pop(next(iter(self._verified)))  # oldest first: dicts keep insertion order
        self._verified[token] = claims
        return claims

    def _verify_sa_token(self, token: str, audiences: tuple[str, ...]) -> tuple[User | None, str]:
        claims = self._signed_claims(token)
        if claims is None:
            return None, ""
        if claims.get("exp", 0) <= self._clock.now().timestamp():
            return None, "service account token has expired"
        if not set(claims.get("aud") or ()) & set(audiences):
            return None, "token audiences do not match"
        k8s = claims.get("kubernetes.io") or {}
        namespace, sa = k8s.get("namespace", ""), k8s.get("serviceaccount") or {}
        if self._sa_lookup(namespace, sa.get("name", "")) != sa.get("uid"):
            return None, f"service account {namespace}/{sa.get('name')} has been deleted"
        for kind in ("pod", "secret", "node"):
            ref = k8s.get(kind)
            if isinstance(ref, dict) and self.bound_lookup is not None:
                where = "" if kind == "node" else namespace
                if self.bound_lookup(kind, where, str(ref.get("name"))) != ref.get("uid"):
                    return None, f"the token's bound {kind} {ref.get('name')} has been deleted"
        user = User(
            f"system:serviceaccount:{namespace}:{sa.get('name')}",
            sa.get("uid", ""),
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
            {"authentication.kubernetes.io/credential-id": (f"JTI={claims.get('jti')}",)},
        )
        return user, ""

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        key = {
            "use": "sig",
            "kty": "EC",
            "crv": "P-256",
            "kid": self.key_id,
            "alg": "ES256",
            "x": _b64url(x),
            "y": _b64url(y),
        }
        return {"keys": [key]}

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # ---- authenticate ----------------------------------------------------------------------------

    async def authenticate(self, token: str, audiences: tuple[str, ...] = (API_AUDIENCE,)) -> User | None:
        user, _ = await self.review(token, audiences)
        return user

    async def review(
        self, token: str, audiences: tuple[str, ...] = (API_AUDIENCE,)
    ) -> tuple[User | None, str]:
        """(user, error) as a TokenReview reports it."""
        if not token:
            return None, "no token"
        static = self._static.get(token)
        if static is not None:
            return with_authenticated(static), ""
        user, error = self._verify_sa_token(token, audiences)
        if user is not None or error:
            return user, error
        for plugin in list(self._plugins):
            found = await plugin(token)
            if found is not None:
                return with_authenticated(found), ""
        return None, "invalid bearer token"
