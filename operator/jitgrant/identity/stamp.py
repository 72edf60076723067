"""The requester stamp and its seal.

The mutating admission webhook writes `spec.requester` from what the API server authenticated, then
seals the whole spec (including that stamp) with an HMAC under a key only the operator holds. The spec
is immutable after creation (a CEL rule on the CRD, and the validating webhook), so the seal stays
valid for the life of the request. The lifecycle refuses any request whose seal does not verify: an
AccessRequest created while the webhook was missing or bypassed carries no valid seal and grants
nothing, whatever its `spec.requester` claims.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jitgrant.models import ProofKind, RequesterStamp
from jitgrant.models.text import visible

SEAL_VERSION = "v1"
_SEAL_DOMAIN = "jitgrant.dev/requester-seal/v1"


def canonical_value(value: Any) -> Any:
    """The value as plain JSON data, with keys whose value is null dropped.

    The API server prunes nulls from non-nullable fields of a structural schema before storing, so a
    stamp written with `issuer: null` is read back without the key; both must hash alike.
    """
    if isinstance(value, Mapping):
        return {str(key): canonical_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [canonical_value(item) for item in value]
    return value


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8, nulls in mappings dropped."""
    return json.dumps(
        canonical_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def requester_from_userinfo(userinfo: Mapping[str, Any]) -> RequesterStamp:
    """The stamp for a requester the API server authenticated (AdmissionReview `request.userInfo`)."""
    username = userinfo.get("username")
    if not isinstance(username, str) or not username:
        raise ValueError("the API server sent no username in userInfo; refusing an anonymous request")
    raw_groups = userinfo.get("groups") or ()
    raw_extra = userinfo.get("extra") or {}
    groups = tuple(str(group) for group in raw_groups)
    extra = {str(key): tuple(str(item) for item in values or ()) for key, values in dict(raw_extra).items()}
    return RequesterStamp(
        username=username,
        uid=str(userinfo.get("uid") or ""),
        groups=groups,
        extra=extra,
        proven_by=ProofKind.KUBERNETES,
    )


def stamp_to_wire(stamp: RequesterStamp) -> dict[str, Any]:
    """The stamp as it is written into `spec.requester` (camelCase, no nulls)."""
    data: dict[str, Any] = canonical_value(stamp.model_dump(mode="json", by_alias=True))
    return data


def _seal_message(*, namespace: str, name: str, spec: Mapping[str, Any]) -> bytes:
    return canonical_json({"domain": _SEAL_DOMAIN, "namespace": namespace, "name": name, "spec": spec})


def seal_requester(*, key: bytes, namespace: str, name: str, spec: Mapping[str, Any]) -> str:
    """An HMAC-SHA256 over (namespace, name, spec including spec.requester), as "v1:<hex>"."""
    if not key:
        raise ValueError("an empty key seals nothing")
    digest = hmac.new(key, _seal_message(namespace=namespace, name=name, spec=spec), hashlib.sha256)
    return f"{SEAL_VERSION}:{digest.hexdigest()}"


def verify_requester_seal(
    *, key: bytes, namespace: str, name: str, spec: Mapping[str, Any], seal: str | None
) -> bool:
    """True only if `seal` is the seal of exactly this namespace, name and spec under `key`."""
    if not seal or not key:
        return False
    expected = seal_requester(key=key, namespace=namespace, name=name, spec=spec)
    return hmac.compare_digest(expected.encode("ascii"), seal.encode("utf-8", "replace"))


# --- Who revoked ---------------------------------------------------------------------------------------

_REVOKER_DOMAIN = "jitgrant.dev/revoked-by/v1"


@dataclass(frozen=True)
class Revoker:
    """Who set `jitgrant.dev/revoke`, as the API server authenticated them, and the reason they gave."""

    username: str
    groups: tuple[str, ...]
    reason: str


def _revoker_seal(*, key: bytes, uid: str, revoker: Revoker, domain: str = _REVOKER_DOMAIN) -> str:
    message = canonical_json(
        {
            "domain": domain,
            "uid": uid,
            "username": revoker.username,
            "groups": list(revoker.groups),
            "reason": revoker.reason,
        }
    )
    return f"{SEAL_VERSION}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def stamp_revoker(*, key: bytes, uid: str, revoker: Revoker, domain: str = _REVOKER_DOMAIN) -> str:
    """The value of `jitgrant.dev/revoked-by`: who, their groups, the reason, sealed for this request."""
    if not key or not uid or not revoker.username:
        raise ValueError("a revoker stamp needs the operator's key, the request's uid and a username")
    return json.dumps(
        {
            "username": revoker.username,
            "groups": list(revoker.groups),
            "reason": revoker.reason,
            "seal": _revoker_seal(key=key, uid=uid, revoker=revoker, domain=domain),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def verified_revoker(
    *, key: bytes, uid: str, value: str | None, domain: str = _REVOKER_DOMAIN
) -> Revoker | None:
    """The revoker the annotation names, only if the webhook sealed it for this request."""
    if not value or not key or not uid:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    username, groups, reason, seal = (data.get(k) for k in ("username", "groups", "reason", "seal"))
    if not (isinstance(username, str) and isinstance(reason, str) and isinstance(seal, str)):
        return None
    if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
        return None
    revoker = Revoker(username=username, groups=tuple(groups), reason=reason)
    expected = _revoker_seal(key=key, uid=uid, revoker=revoker, domain=domain)
    return revoker if hmac.compare_digest(expected.encode(), seal.encode("utf-8", "replace")) else None


def revocation_message(*, key: bytes, uid: str, stamp: str | None, reason: str) -> str:
    """The status message and audit reason of a revocation: who revoked, as proven, and why."""
    revoker = verified_revoker(key=key, uid=uid, value=stamp)
    if revoker is None:
        return f"revoked by an unverified caller (no valid jitgrant.dev/revoked-by stamp): {visible(reason)}"
    return f"revoked by {revoker.username}: {visible(revoker.reason.strip() or reason)}"


def revoker_refusal(
    *,
    key: bytes,
    uid: str,
    old: Mapping[str, str],
    new: Mapping[str, str],
    annotation: str,
    revoke_annotation: str,
    caller: str,
) -> str | None:
    """Why an UPDATE's change to `annotation` (revoked-by) must be refused, or None.

    Only the mutating webhook writes it, in the same UPDATE that sets the revoke annotation, for the
    caller the API server authenticated: anything else is someone writing a name of their choosing.
    """
    if old.get(annotation) == new.get(annotation):
        return None
    revoker = verified_revoker(key=key, uid=uid, value=new.get(annotation))
    newly_revoked = new.get(revoke_annotation) is not None and old.get(revoke_annotation) != new.get(
        revoke_annotation
    )
    if revoker is None or not newly_revoked or revoker.username != caller:
        return (
            f"annotation {annotation} is written by the jitgrant webhook, naming whoever sets "
            f"{revoke_annotation}; it cannot be set or changed by hand"
        )
    return None


# --- Who deleted ----------------------------------------------------------------------------------------

# Its own domain: a revoked-by stamp cannot be passed off as a deleted-by one, nor the reverse.
_DELETER_DOMAIN = "jitgrant.dev/deleted-by/v1"


def stamp_deleter(*, key: bytes, uid: str, deleter: Revoker) -> str:
    """The value of `jitgrant.dev/deleted-by`: who sent the DELETE (as the API server authenticated
    them), their groups and, in `reason`, what led to it (the owners a garbage collector followed).
    Deterministic: the same deleter stamped twice is the same value, so the webhook can skip a write."""
    return stamp_revoker(key=key, uid=uid, revoker=deleter, domain=_DELETER_DOMAIN)


def verified_deleter(*, key: bytes, uid: str, value: str | None) -> Revoker | None:
    """The deleter the annotation names, only if the webhook sealed it for this request."""
    return verified_revoker(key=key, uid=uid, value=value, domain=_DELETER_DOMAIN)


def deletion_message(*, key: bytes, uid: str, stamp: str | None, garbage_collector: str) -> str:
    """The audit reason of a deletion's revocation: who deleted the request, as proven by the stamp."""
    deleter = verified_deleter(key=key, uid=uid, value=stamp)
    if deleter is None:
        return "the AccessRequest was deleted (no valid jitgrant.dev/deleted-by stamp: deleter unknown)"
    if deleter.username == garbage_collector:
        followed = f" {deleter.reason}" if deleter.reason else ""
        return f"the AccessRequest was deleted by the garbage collector ({deleter.username}){followed}"
    return f"the AccessRequest was deleted by {deleter.username}"
