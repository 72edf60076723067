"""Who revoked: the reconciler's revocation step names the caller the webhook stamped and sealed in
`jitgrant.dev/revoked-by`, so the status message and the `revoked` audit record say who, not only why.
A deletion's revocation names the deleter the DELETE webhook stamped in `jitgrant.dev/deleted-by`
(or the garbage collector and the owners it followed)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from jitgrant.identity.stamp import deletion_message, revocation_message
from jitgrant.lifecycle import Action, Step
from jitgrant.models.vocabulary import (
    DELETED_BY_ANNOTATION,
    GARBAGE_COLLECTOR_USERNAME,
    REVOKED_BY_ANNOTATION,
    Reason,
)


def named_revoker(step: Step, *, key: bytes, uid: str, annotations: Mapping[str, str]) -> Step:
    """The step with its message saying who revoked (as proven by the stamp) and why; others unchanged."""
    if step.action is not Action.REVOKE or step.reason != Reason.REVOKED:
        return step
    stamp = annotations.get(REVOKED_BY_ANNOTATION)
    return replace(step, message=revocation_message(key=key, uid=uid, stamp=stamp, reason=step.message))


def named_deleter(*, key: bytes, uid: str, annotations: Mapping[str, str]) -> str:
    """The message of a deletion's revocation: who deleted the request, as proven by the stamp."""
    return deletion_message(
        key=key,
        uid=uid,
        stamp=annotations.get(DELETED_BY_ANNOTATION),
        garbage_collector=GARBAGE_COLLECTOR_USERNAME,
    )
