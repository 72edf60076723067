"""Signed checkpoints: sign and check "the head was record N with hash H at time T".

Pure (the `cryptography` package only, no I/O): the operator signs with the Ed25519 private key,
the auditor checks with the public half, offline.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jitgrant.audit.records import SCHEMA_VERSION, ChainHead, Checkpoint, CheckpointReason, canonical_json


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a key: the first 16 hex digits of SHA-256 over its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_hash(raw: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over a whole checkpoint, signature included: how the next one names it."""
    return hashlib.sha256(canonical_json(dict(raw))).hexdigest()


@dataclass(frozen=True)
class CheckpointRef:
    """The previous checkpoint, as the next one names it."""

    hash: str
    time: datetime

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointRef:
        return cls(hash=checkpoint_hash(checkpoint.to_wire()), time=checkpoint.time)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the checkpoint public key must be an Ed25519 key")
    return key


def signed_payload(raw: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: its canonical JSON without `signature`."""
    return canonical_json({key: value for key, value in raw.items() if key != "signature"})


class CheckpointSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.key_id = key_id(private_key.public_key())

    @classmethod
    def from_pem(cls, pem: bytes) -> CheckpointSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the checkpoint signing key must be an Ed25519 private key")
        return cls(key)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(
        self,
        *,
        instance: str,
        head: ChainHead,
        time: datetime,
        interval_seconds: float | None = None,
        previous: CheckpointRef | None = None,
        reason: CheckpointReason | None = None,
    ) -> Checkpoint:
        draft = Checkpoint(
            schema_version=SCHEMA_VERSION,
            instance=instance,
            seq=head.seq,
            head_hash=head.hash,
            time=time,
            key_id=self.key_id,
            interval_seconds=interval_seconds,
            prev_checkpoint_hash=previous.hash if previous else None,
            prev_checkpoint_time=previous.time if previous else None,
            reason=reason,
            signature="",
        )
        signature = self._key.sign(signed_payload(draft.to_wire()))
        return draft.model_copy(update={"signature": base64.b64encode(signature).decode()})


def checkpoint_signature_error(raw: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """Why this checkpoint's signature does not hold (None when it does)."""
    key = keys.get(str(raw.get("keyId")))
    if key is None:
        return f"signed with unknown key {raw.get('keyId')!r}"
    try:
        signature = base64.b64decode(str(raw.get("signature", "")), validate=True)
        key.verify(signature, signed_payload(raw))
    except (InvalidSignature, ValueError):
        return "signature does not match its content"
    return None
