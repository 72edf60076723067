"""Checks on the claims of an ID token whose signature has already been verified. Pure.

Every claim check lives here, against an injected clock, instead of in pyjwt's options, so each rule is
stated once, tested directly and reported with a reason a person can act on. `oidc.py` does the
cryptography; this module decides whether the signed claims are acceptable to *us*.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jitgrant.models import GrantPolicySpec, OIDCRequester, ProofKind, RequesterStamp
from jitgrant.models.policy import SYSTEM_CLAIMS_OPT_IN, SYSTEM_PREFIX

DEFAULT_LEEWAY = timedelta(seconds=30)

# Real ID tokens are 1-2 KB; a bigger one costs parsing and memory before anything is proven, and
# the API server's own limit on an annotation (256 KiB) is no bound worth trusting.
MAX_TOKEN_BYTES = 16 * 1024

# Signature algorithms with a public verification key. HMAC ("HS*") is never accepted for an issuer
# that publishes a JWKS: the "key" would be public, so anyone could sign. "none" is not a signature.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class ClaimError(ValueError):
    """A token's claims are not acceptable; the message says which and why."""


@dataclass(frozen=True)
class VerifiedIdentity:
    """What a verified ID token proves: who, from which issuer, in which groups, until when."""

    issuer: str
    subject: str
    groups: tuple[str, ...]
    expires_at: datetime
    replay_key: str

    @property
    def username(self) -> str:
        return oidc_username(issuer=self.issuer, subject=self.subject)

    def to_stamp(self, *, extra: Mapping[str, tuple[str, ...]] | None = None) -> RequesterStamp:
        return RequesterStamp(
            username=self.username,
            groups=self.groups,
            extra=dict(extra or {}),
            proven_by=ProofKind.OIDC,
            issuer=self.issuer,
            subject=self.subject,
        )


def oidc_username(*, issuer: str, subject: str) -> str:
    """The username an OIDC requester is known by: the issuer and subject, never a bare subject."""
    return f"oidc:{issuer}#{subject}"


def allowed_algorithms(issuer: OIDCRequester) -> tuple[str, ...]:
    """The issuer's algorithm allowlist, minus anything that is not an asymmetric signature."""
    return tuple(alg for alg in issuer.algorithms if alg in ASYMMETRIC_ALGORITHMS)


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimError(f"claim '{name}' must be a number of seconds since the epoch, got {value!r}")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise ClaimError(f"claim '{name}' is out of range: {value!r}") from error


def _groups(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    value = claims.get(claim)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ClaimError(f"claim '{claim}' must be a string or a list of strings")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # json.loads keeps the last value; a verifier elsewhere may keep the first, so a second
            # "sub" could mean one identity here and another there.
            raise ClaimError(f"token repeats the key {key!r}; JSON with duplicate keys is refused")
        seen[key] = value
    return seen


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_SEGMENTS = ("header", "payload", "signature")


def decode_segment(text: str, what: str) -> bytes:
    """The bytes of one JWS segment, accepted only in its one canonical spelling.

    RFC 7515 section 2: unpadded base64url. Python's decoder also takes `=` padding, and ignores
    non-zero bits after the last whole byte, so one signature has several spellings; each would be a
    "new" token to anything that remembers tokens by their text.
    """
    refused = f"token's {what} is not canonical base64url"
    if "=" in text:
        raise ClaimError(f"{refused}: it has '=' padding, which JWS leaves out (RFC 7515 section 2)")
    if not _BASE64URL.fullmatch(text):
        raise ClaimError(f"{refused}: it has characters outside A-Z a-z 0-9 '-' '_'")
    if len(text) % 4 == 1:
        raise ClaimError(f"{refused}: its length ({len(text)}) is not that of whole bytes")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise ClaimError(f"{refused}: its last character has non-zero trailing bits")
    return raw


def _segment(text: str, what: str) -> dict[str, Any]:
    raw = decode_segment(text, what)
    try:
        value = json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError) as error:
        if isinstance(error, ClaimError):
            raise
        raise ClaimError(f"token is not a well-formed JWT (its {what} is not JSON)") from error
    if not isinstance(value, dict):
        raise ClaimError(f"token is not a well-formed JWT (its {what} is not a JSON object)")
    return value


def check_token_shape(token: str) -> None:
    """Refuse, before any JWT library sees it, a token that is too big, whose JSON is ambiguous, or
    any of whose segments is spelled in other than canonical base64url."""
    size = len(token.encode("utf-8", "replace"))
    if size > MAX_TOKEN_BYTES:
        raise ClaimError(f"token is {size} bytes; tokens over {MAX_TOKEN_BYTES} bytes are refused unread")
    parts = token.split(".")
    if len(parts) != 3:
        raise ClaimError("token is not a well-formed JWT (a compact JWS has three dot-separated parts)")
    _segment(parts[0], "header")
    _segment(parts[1], "payload")
    decode_segment(parts[2], "signature")


def _check_authorized_party(claims: Mapping[str, Any], *, audience: str, audiences: list[str]) -> None:
    """OpenID Connect Core 3.1.3.7 (6, 7): a token for several audiences is ours only if `azp` says so,
    and a token whose `azp` names another client was issued to that client, not to us."""
    azp = claims.get("azp")
    if azp is not None and azp != audience:
        raise ClaimError(f"token was issued to client {azp!r} ('azp'), not to {audience!r}")
    if len(set(audiences)) > 1 and azp is None:
        raise ClaimError(
            f"token has several audiences {audiences!r} and no 'azp'; a multi-audience token is accepted "
            f"only when 'azp' is {audience!r}"
        )


def _check_system_names(subject: str, groups: tuple[str, ...], *, issuer: OIDCRequester) -> None:
    if issuer.dangerously_allow_system_claims:
        return
    named = [item for item in (subject, *groups) if item.startswith(SYSTEM_PREFIX)]
    if named:
        raise ClaimError(
            f"claims {', '.join(repr(item) for item in named)} use Kubernetes' reserved 'system:' prefix "
            f"and are refused (the policy's issuer entry would need {SYSTEM_CLAIMS_OPT_IN}: true)"
        )


def replay_key_for(*, claims: Mapping[str, Any], token: str) -> str:
    """The key a replayed token is recognised by: `iss`+`jti`, or else what the issuer signed.

    Google's ID tokens carry no `jti`. Without one the key is a hash of the decoded header and payload
    bytes (the signed content), not of the token's text or its signature: `check_token_shape` already
    refuses other spellings of the same bytes, and an ECDSA signature can be re-made by anyone as
    (r, n - s) without the key, so signature bytes would let a token through twice. Two tokens with the
    same signed content prove the same thing, so refusing the second loses nothing.
    """
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return f"jti:{claims.get('iss')}#{jti}"
    header, payload, _ = token.split(".")
    signed = hashlib.sha256()
    for part, what in ((header, "header"), (payload, "payload")):
        raw = decode_segment(part, what)
        signed.update(len(raw).to_bytes(8, "big") + raw)
    return "signed:" + signed.hexdigest()


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: OIDCRequester,
    now: datetime,
    replay_key: str,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> VerifiedIdentity:
    """Accept the claims for this issuer at `now`, or raise ClaimError with the reason."""
    iss = claims.get("iss")
    if iss != issuer.issuer:
        raise ClaimError(f"issuer {iss!r} is not {issuer.issuer!r}")
    aud = claims.get("aud")
    if aud is None:
        raise ClaimError("token has no 'aud' claim")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(item, str) for item in audiences):
        raise ClaimError("claim 'aud' must be a string or a list of strings")
    if issuer.audience not in audiences:
        raise ClaimError(f"audience {aud!r} does not include {issuer.audience!r}")
    _check_authorized_party(claims, audience=issuer.audience, audiences=audiences)
    expires_at = _numeric_date(claims, "exp")
    if expires_at is None:
        raise ClaimError("token has no 'exp' claim; tokens without an expiry are refused")
    if now >= expires_at + leeway:
        raise ClaimError(f"token expired at {expires_at.isoformat()}")
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and now + leeway < not_before:
        raise ClaimError(f"token is not valid before {not_before.isoformat()} ('nbf' is in the future)")
    issued_at = _numeric_date(claims, "iat")
    if issued_at is not None and now + leeway < issued_at:
        raise ClaimError(f"token was issued in the future ({issued_at.isoformat()})")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ClaimError("token has no 'sub' claim")
    groups = _groups(claims, issuer.groups_claim)
    _check_system_names(subject, groups, issuer=issuer)
    return VerifiedIdentity(
        issuer=issuer.issuer,
        subject=subject,
        groups=groups,
        expires_at=expires_at,
        replay_key=replay_key,
    )


def policy_not_found(policy_name: str) -> str:
    """Why a token naming a policy that does not exist is refused (the webhook, `policy test`)."""
    return f"GrantPolicy {policy_name!r} not found"


def issuer_entry(policy: GrantPolicySpec, *, policy_name: str, claimed: str) -> OIDCRequester | str:
    """The policy's entry for the token's (still unverified) issuer, or why the token is refused."""
    issuer = next((item for item in policy.requesters.oidc if item.issuer == claimed), None)
    if issuer is not None:
        return issuer
    named = ", ".join(item.issuer for item in policy.requesters.oidc) or "none"
    return f"issuer {claimed!r} is not named by policy {policy_name} (named: {named})"


def requester_refusal(identity: VerifiedIdentity, *, issuer: OIDCRequester, policy_name: str) -> str | None:
    """None if the policy lists this subject or one of its groups for this issuer, else why not."""
    if identity.subject in issuer.subjects:
        return None
    if set(identity.groups) & set(issuer.groups):
        return None
    subjects = ", ".join(issuer.subjects) or "none"
    groups = ", ".join(issuer.groups) or "none"
    return (
        f"subject {identity.subject!r} of issuer {issuer.issuer} is not a requester of policy {policy_name} "
        f"(allowed subjects: {subjects}; groups in claim '{issuer.groups_claim}': {groups})"
    )


class ReplayCache:
    """Remembers accepted tokens until they expire, so the same token is accepted only once.

    Bounded: when full of unexpired entries it refuses new tokens rather than forgetting old ones
    (forgetting would reopen the replay window).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        leeway: timedelta = DEFAULT_LEEWAY,
        max_entries: int = 100_000,
    ) -> None:
        self._clock = clock
        self._leeway = leeway
        self._max_entries = max_entries
        self._seen: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_expired(self, now: datetime) -> None:
        expired = [key for key, until in self._seen.items() if until <= now]
        for key in expired:
            del self._seen[key]

    def seen(self, key: str) -> bool:
        now = self._clock()
        until = self._seen.get(key)
        return until is not None and until > now

    def remember(self, key: str, *, expires_at: datetime) -> None:
        """Record a token as used; raise ClaimError if it was used before or the cache is full."""
        now = self._clock()
        if self.seen(key):
            raise ClaimError("token was already used (replayed 'jti'); get a fresh token")
        if len(self._seen) >= self._max_entries:
            self._forget_expired(now)
            if len(self._seen) >= self._max_entries:
                raise ClaimError("too many unexpired tokens remembered; try again later")
        # Keep it as long as the token could still pass the expiry check.
        self._seen[key] = expires_at + self._leeway
