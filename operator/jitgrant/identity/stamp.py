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
from typing import Any

from jitgrant.models import ProofKind, RequesterStamp

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
