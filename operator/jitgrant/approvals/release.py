"""Who may release an AccessRequest: its requester, on its own request, once.

Releasing is the requester giving its access back early (reason `Released`), distinct from an
approver's revoke. The annotation is the requester's word, so nobody else may set it, and once set
it cannot be changed or taken back. Pure: the webhook parses, calls this and answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jitgrant.approvals.review import Caller, annotations_of, is_sealed, requester_of
from jitgrant.models import TERMINAL_PHASES, RequesterStamp
from jitgrant.models.text import MAX_REASON_LENGTH, visible
from jitgrant.models.vocabulary import CREATED_BY_EXTRA, RELEASE_ANNOTATION, REVOKE_ANNOTATION


def is_requester(caller: Caller, requester: RequesterStamp) -> bool:
    """The stamped requester itself, or (for a request proven by OIDC) the identity that filed it."""
    if not caller.username:
        return False
    return caller.username == requester.username or caller.username in requester.extra.get(
        CREATED_BY_EXTRA, ()
    )


def review_release(
    *, old: Mapping[str, Any], new: Mapping[str, Any], caller: Caller, key: bytes
) -> str | None:
    """Why this change of the release annotation must be refused, or None (also when it is untouched)."""
    before = annotations_of(old).get(RELEASE_ANNOTATION)
    after = annotations_of(new).get(RELEASE_ANNOTATION)
    if before == after:
        return None
    meta = old.get("metadata") or {}
    where = f"AccessRequest {meta.get('namespace')}/{meta.get('name')}"
    if before is not None:
        return f"annotation {RELEASE_ANNOTATION} is set once and cannot be changed or removed"
    requester = requester_of(old)
    if requester is None or not is_sealed(old, key=key):
        return (
            f"{where} was not stamped by the jitgrant webhook; it grants nothing and has nothing to release"
        )
    if not is_requester(caller, requester):
        return (
            f"only the requester ({requester.username}) may release {where}; you are {caller.username}. "
            f"An approver ends someone else's grant with {REVOKE_ANNOTATION}=<reason>"
        )
    if after is not None and len(after) > MAX_REASON_LENGTH:
        return (
            f"annotation {RELEASE_ANNOTATION} is {len(after)} characters; a release reason of at most "
            f"{MAX_REASON_LENGTH} is accepted"
        )
    status = old.get("status") or {}
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if phase in {terminal.value for terminal in TERMINAL_PHASES}:
        return f"{where} is already {phase}; there is nothing to release"
    return None


def release_message(requester: RequesterStamp, value: str) -> str:
    """The status message, Event and audit reason of a release: says it was the requester, and who."""
    why = visible(value.strip())  # read in terminals (status, Events, logs): one line, no controls
    return f"Released by requester {requester.username}" + (f": {why}" if why else "")
