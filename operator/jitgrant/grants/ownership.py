"""Proof that the operator made an object: an HMAC seal over where it is and whose it is (pure).

Labels select objects; anyone who may create or patch an object can write them, so they prove
nothing. Every object of a grant carries `jitgrant.dev/owner-seal`, an HMAC-SHA256 under the
operator's key over (cluster, kind, namespace, name, request uid). Only the operator can compute it,
and it does not fit any other object: copied onto another name, kind, namespace, cluster or request,
it no longer verifies. An object whose seal does not verify is foreign: never adopted, read, handed
out or deleted.
"""

from __future__ import annotations

import hashlib
import hmac

from jitgrant.identity.stamp import canonical_json

SEAL_VERSION = "v1"
_DOMAIN = "jitgrant.dev/owner-seal/v1"


def owner_seal(*, key: bytes, cluster: str, kind: str, namespace: str, name: str, request_uid: str) -> str:
    """The seal of one object, as "v1:<hex>"."""
    if not key:
        raise ValueError("an empty key seals nothing")
    if not request_uid:
        raise ValueError("an object sealed for no request would prove nothing")
    message = canonical_json(
        {
            "domain": _DOMAIN,
            "cluster": cluster,
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "requestUid": request_uid,
        }
    )
    return f"{SEAL_VERSION}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def verify_owner_seal(
    *, key: bytes, cluster: str, kind: str, namespace: str, name: str, request_uid: str, seal: str | None
) -> bool:
    """True only if `seal` is the operator's seal of exactly this object for this request."""
    if not seal or not key or not request_uid:
        return False
    expected = owner_seal(
        key=key, cluster=cluster, kind=kind, namespace=namespace, name=name, request_uid=request_uid
    )
    return hmac.compare_digest(expected.encode("ascii"), seal.encode("utf-8", "replace"))
