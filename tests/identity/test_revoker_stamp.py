"""The revoker stamp (identity-and-approvals.md, "Who revoked"): sealed for one request, naming one caller;
anything else is refused."""

from __future__ import annotations

import pytest

from jitgrant.identity.stamp import (
    Revoker,
    revocation_message,
    revoker_refusal,
    stamp_revoker,
    verified_revoker,
)

KEY = b"receipt-key-for-tests-0123456789abcdef"
UID = "3f1c9e8a-uid"
REVOKE, REVOKED_BY = "jitgrant.dev/revoke", "jitgrant.dev/revoked-by"
ALICE = Revoker(username="alice", groups=("sre",), reason="INC-9 agent misbehaving")


def test_the_stamp_names_the_revoker_for_this_request_only() -> None:
    stamp = stamp_revoker(key=KEY, uid=UID, revoker=ALICE)
    assert verified_revoker(key=KEY, uid=UID, value=stamp) == ALICE
    assert verified_revoker(key=KEY, uid="another-uid", value=stamp) is None
    assert verified_revoker(key=b"another-key-0123456789abcdef", uid=UID, value=stamp) is None


@pytest.mark.parametrize("field", ["username", "groups", "reason"])
def test_an_edited_stamp_does_not_verify(field: str) -> None:
    stamp = stamp_revoker(key=KEY, uid=UID, revoker=ALICE)
    edits = {
        "username": ('"alice"', '"bob"'),
        "groups": ('["sre"]', '["admins"]'),
        "reason": ("INC-9", "INC-1"),
    }
    old, new = edits[field]
    assert verified_revoker(key=KEY, uid=UID, value=stamp.replace(old, new)) is None


@pytest.mark.parametrize("value", [None, "", "not json", "[]", '{"username": "alice"}'])
def test_garbage_is_no_revoker(value: str | None) -> None:
    assert verified_revoker(key=KEY, uid=UID, value=value) is None


def test_the_message_says_who_and_why_or_that_nobody_is_proven() -> None:
    stamp = stamp_revoker(key=KEY, uid=UID, revoker=ALICE)
    assert revocation_message(key=KEY, uid=UID, stamp=stamp, reason="x") == (
        "revoked by alice: INC-9 agent misbehaving"
    )
    assert revocation_message(key=KEY, uid=UID, stamp=None, reason="INC-9") == (
        "revoked by an unverified caller (no valid jitgrant.dev/revoked-by stamp): INC-9"
    )


def refusal(old: dict[str, str], new: dict[str, str], caller: str) -> str | None:
    return revoker_refusal(
        key=KEY, uid=UID, old=old, new=new, annotation=REVOKED_BY, revoke_annotation=REVOKE, caller=caller
    )


def test_the_webhooks_own_stamp_in_the_same_update_as_the_revocation_passes() -> None:
    stamp = stamp_revoker(key=KEY, uid=UID, revoker=ALICE)
    assert refusal({}, {REVOKE: ALICE.reason, REVOKED_BY: stamp}, "alice") is None


def test_a_hand_written_or_replayed_stamp_is_refused() -> None:
    stamp = stamp_revoker(key=KEY, uid=UID, revoker=ALICE)
    expected = (
        "annotation jitgrant.dev/revoked-by is written by the jitgrant webhook, naming whoever sets "
        "jitgrant.dev/revoke; it cannot be set or changed by hand"
    )
    # Mallory copies alice's stamp onto her own revocation, or onto a request without one.
    assert refusal({}, {REVOKE: ALICE.reason, REVOKED_BY: stamp}, "mallory") == expected
    assert refusal({REVOKE: ALICE.reason}, {REVOKE: ALICE.reason, REVOKED_BY: stamp}, "alice") == expected
    assert refusal({}, {REVOKE: "x", REVOKED_BY: '{"username": "alice"}'}, "alice") == expected
    # Removing the stamp of a revocation that happened is a change too.
    assert refusal({REVOKE: "x", REVOKED_BY: stamp}, {REVOKE: "x"}, "mallory") == expected
