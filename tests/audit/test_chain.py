"""Every kind of edit to a stored trail is detected, and an untouched trail verifies."""

from __future__ import annotations

import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from jitgrant.audit.chain import ChainHead, StoredLine, VerifyReport, record_hash, verify_chain
from jitgrant.audit.checkpoint import CheckpointSigner

from .conftest import KeyPair, as_lines, build_trail

Items = list[dict[str, Any]]


def verify(items: Items, keypair: KeyPair | None = None) -> VerifyReport:
    keys = None
    if keypair is not None:
        keys = {keypair.signer.key_id: keypair.signer.public_key()}
    return verify_chain(as_lines(items), public_keys=keys)


def records_of(items: Items) -> Items:
    return [item for item in items if item["kind"] == "record"]


def find(items: Items, seq: int) -> dict[str, Any]:
    return next(item for item in items if item["kind"] == "record" and item["seq"] == seq)


def rehash(item: dict[str, Any]) -> None:
    item["hash"] = record_hash(item)


def kinds(report: VerifyReport) -> set[str]:
    return {finding.kind for finding in report.findings}


def test_untouched_trail_verifies(keypair: KeyPair) -> None:
    report = verify(build_trail(40, signer=keypair.signer, checkpoint_every=10), keypair)
    assert report.ok, report.findings
    assert (report.records, report.first_seq, report.last_seq) == (40, 1, 40)
    assert (report.checkpoints, report.verified_checkpoints, report.last_checkpoint_seq) == (4, 4, 40)


def test_modified_content_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    find(items, 7)["event"]["scope"]["namespace"] = "kube-system"
    report = verify(items, keypair)
    assert kinds(report) == {"modified"} and report.first_bad_seq == 7


def test_modified_and_rehashed_record_breaks_the_next_link(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    record = find(items, 7)
    record["event"]["approvers"] = []
    rehash(record)
    report = verify(items, keypair)
    assert "modified" in kinds(report) and report.first_bad_seq == 7


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    # The forger re-links every record from 13 on: every hash and link is consistent again.
    find(items, 13)["event"]["reason"] = "nothing to see"
    prev = find(items, 12)["hash"]
    for record in records_of(items)[12:]:
        record["prevHash"] = prev
        rehash(record)
        prev = record["hash"]
    report = verify(items, keypair)
    assert kinds(report) == {"modified"}
    assert report.first_bad_seq == 11  # somewhere after the last checkpoint that still holds (10)


def test_rewritten_chain_with_forged_checkpoint_is_caught(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    forged = CheckpointSigner(Ed25519PrivateKey.generate()).sign(
        instance="op-1", head=ChainHead(20, "f" * 64), time=find(items, 20)["event"]["time"]
    )
    items[-1] = forged.to_wire()
    report = verify(items, keypair)
    assert "bad-checkpoint" in kinds(report)


def test_edited_checkpoint_is_caught(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    checkpoint = next(item for item in items if item["kind"] == "checkpoint")
    checkpoint["time"] = "2030-01-01T00:00:00Z"
    assert kinds(verify(items, keypair)) == {"bad-checkpoint"}


def test_deleted_record_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    items.remove(find(items, 5))
    report = verify(items, keypair)
    assert kinds(report) == {"deleted"} and report.first_bad_seq == 5


def test_deletion_hidden_by_renumbering_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    items.remove(find(items, 5))
    for record in records_of(items)[4:]:
        record["seq"] -= 1
    report = verify(items, keypair)
    assert "deleted" in kinds(report) and report.first_bad_seq == 5


def test_reordered_records_are_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    a, b = items.index(find(items, 5)), items.index(find(items, 6))
    items[a], items[b] = items[b], items[a]
    report = verify(items, keypair)
    assert kinds(report) == {"reordered"} and report.first_bad_seq == 5


def test_inserted_record_claiming_a_taken_seq_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    fake = copy.deepcopy(find(items, 8))
    fake["event"]["requester"]["username"] = "someone-else"
    rehash(fake)
    items.insert(items.index(find(items, 8)), fake)
    report = verify(items, keypair)
    assert kinds(report) == {"inserted"} and report.first_bad_seq == 8


def test_insertion_hidden_by_renumbering_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    fake = copy.deepcopy(find(items, 8))
    fake["event"]["reason"] = "forged"
    fake["prevHash"] = find(items, 7)["hash"]
    rehash(fake)
    for record in records_of(items)[7:]:
        record["seq"] += 1
    items.insert(items.index(find(items, 9)), fake)
    report = verify(items, keypair)
    assert "inserted" in kinds(report) and report.first_bad_seq == 8


def test_truncation_before_a_checkpoint_is_detected(keypair: KeyPair) -> None:
    items = build_trail(20, signer=keypair.signer, checkpoint_every=10)
    records = records_of(items)
    truncated = [item for item in items if item["kind"] == "checkpoint" or item["seq"] <= 16]
    assert len(truncated) == len(items) - 4 and records
    report = verify(truncated, keypair)
    assert kinds(report) == {"truncated"} and report.first_bad_seq == 17


def test_truncation_after_the_last_checkpoint_is_a_stated_limit(keypair: KeyPair) -> None:
    items = build_trail(25, signer=keypair.signer, checkpoint_every=10)
    truncated = [item for item in items if item["kind"] == "checkpoint" or item["seq"] <= 22]
    report = verify(truncated, keypair)
    assert report.ok
    unproven = report.coverage.unproven
    assert any("records 21..22 come after the newest checkpoint: not proven" in s for s in unproven)


def test_deleting_the_first_records_is_detected() -> None:
    items = build_trail(10)[3:]
    report = verify(items)
    assert kinds(report) == {"deleted"} and report.first_bad_seq == 1


def test_repeated_deliveries_are_skipped_not_reported(keypair: KeyPair) -> None:
    items = build_trail(10, signer=keypair.signer, checkpoint_every=5)
    repeated = items[:6] + items[3:]  # a batch delivered twice
    report = verify(repeated, keypair)
    assert report.ok and report.duplicates == 3  # two records and a checkpoint


def test_garbage_line_is_reported() -> None:
    lines = [*as_lines(build_trail(3)), StoredLine("line 4", b"{not json")]
    report = verify_chain(lines)
    assert kinds(report) == {"malformed"}


def test_without_checkpoints_verify_says_what_it_cannot_see() -> None:
    report = verify(build_trail(5))
    assert report.ok and any("no trusted checkpoint" in note for note in report.notes)


_SIGNER = CheckpointSigner(Ed25519PrivateKey.generate())


@settings(max_examples=40, deadline=None)
@given(
    seq=st.integers(min_value=1, max_value=12),
    path=st.sampled_from(
        [
            ("event", "requestName"),
            ("event", "cluster"),
            ("event", "time"),
            ("event", "scope", "namespace"),
            ("event", "requester", "username"),
            ("instance",),
            ("prevHash",),
        ]
    ),
    value=st.text(min_size=1, max_size=8),
    rehashed=st.booleans(),
)
def test_any_single_field_edit_is_detected(
    seq: int, path: tuple[str, ...], value: str, rehashed: bool
) -> None:
    # Ends with a signed checkpoint: without one, a re-hashed edit to the last record is invisible.
    items = build_trail(12, signer=_SIGNER, checkpoint_every=12)
    record = find(items, seq)
    target = record
    for key in path[:-1]:
        target = target[key]
    if target[path[-1]] == value:
        return
    target[path[-1]] = value
    if rehashed:
        rehash(record)
    report = verify_chain(as_lines(items), public_keys={_SIGNER.key_id: _SIGNER.public_key()})
    assert not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= seq
