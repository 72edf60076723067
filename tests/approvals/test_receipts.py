"""Receipts bind a decision to one request (UID and spec) and to every recorded field."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jitgrant.approvals.receipts import (
    RecordedApproval,
    dump_recorded,
    make_receipt,
    parse_recorded,
    record_decision,
    spec_hash,
    verify_receipt,
)

KEY = b"r" * 32
SPEC: dict[str, Any] = {
    "policy": "prod",
    "namespace": "payments",
    "clusterRole": "jit-restart",
    "requester": {"username": "system:serviceaccount:agents:oncall", "groups": ["system:serviceaccounts"]},
}
AT = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _entry(**overrides: Any) -> RecordedApproval:
    entry = record_decision(
        key=KEY, request_uid="uid-1", spec=SPEC, approver="alice", groups=["sre"], decision="approve", at=AT
    )
    return dataclasses.replace(entry, **overrides) if overrides else entry


def test_a_recorded_decision_verifies_for_its_request() -> None:
    assert verify_receipt(key=KEY, request_uid="uid-1", spec_hash=spec_hash(SPEC), recorded=_entry())


@pytest.mark.parametrize(
    "field, value",
    [
        ("approver", "mallory"),
        ("groups", ("sre", "admins")),
        ("at", AT + timedelta(seconds=1)),
        ("decision", "deny"),
        ("reason", "edited"),
        ("receipt", "v1:" + "0" * 64),
    ],
)
def test_changing_any_recorded_field_breaks_the_receipt(field: str, value: Any) -> None:
    tampered = _entry(**{field: value})
    assert not verify_receipt(key=KEY, request_uid="uid-1", spec_hash=spec_hash(SPEC), recorded=tampered)


def test_receipt_is_bound_to_uid_spec_and_key() -> None:
    entry = _entry()
    other_spec = {**SPEC, "clusterRole": "cluster-admin"}
    assert not verify_receipt(key=KEY, request_uid="uid-2", spec_hash=spec_hash(SPEC), recorded=entry)
    assert not verify_receipt(key=KEY, request_uid="uid-1", spec_hash=spec_hash(other_spec), recorded=entry)
    assert not verify_receipt(key=b"x" * 32, request_uid="uid-1", spec_hash=spec_hash(SPEC), recorded=entry)
    assert not verify_receipt(key=KEY, request_uid="", spec_hash=spec_hash(SPEC), recorded=entry)


def test_annotation_round_trip_keeps_receipts_valid_even_from_another_timezone() -> None:
    entries = [_entry(), _entry(approver="bob")]
    parsed = parse_recorded(dump_recorded(entries))
    assert parsed[0] == entries[0]
    assert verify_receipt(key=KEY, request_uid="uid-1", spec_hash=spec_hash(SPEC), recorded=parsed[0])
    shifted = json.loads(dump_recorded([entries[0]]))
    shifted[0]["at"] = AT.astimezone(timezone(timedelta(hours=2))).isoformat()
    (same,) = parse_recorded(json.dumps(shifted))
    assert verify_receipt(key=KEY, request_uid="uid-1", spec_hash=spec_hash(SPEC), recorded=same)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not json",
        "{}",
        "[1, 2]",
        '[{"approver": "a"}]',
        '[{"approver": "a", "at": "2025-01-01T00:00:00", "decision": "approve"}]',
        '[{"approver": "a", "at": "x", "decision": "approve"}]',
        '[{"approver": "a", "at": "2025-01-01T00:00:00+00:00", "decision": "maybe"}]',
    ],
)
def test_malformed_annotations_yield_nothing(value: str | None) -> None:
    assert parse_recorded(value) == []


def test_make_receipt_refuses_naive_times_and_missing_uid() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_receipt(
            key=KEY,
            request_uid="u",
            spec_hash="h",
            approver="a",
            groups=[],
            decision="approve",
            at=datetime(2025, 1, 1),
        )
    with pytest.raises(ValueError, match="UID"):
        make_receipt(
            key=KEY, request_uid="", spec_hash="h", approver="a", groups=[], decision="approve", at=AT
        )


def test_spec_hash_depends_on_the_requester_stamp() -> None:
    forged = {**SPEC, "requester": {**SPEC["requester"], "username": "alice"}}
    assert spec_hash(SPEC) != spec_hash(forged)
    assert spec_hash(SPEC) == spec_hash(dict(reversed(list(SPEC.items()))))
