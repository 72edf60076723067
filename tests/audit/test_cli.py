"""`jitgrant audit verify` and `jitgrant audit query`, driven through argv as a user would."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jitgrant.audit import EventType
from jitgrant.audit.chain import ChainHead, link
from jitgrant.audit.cli import add_audit_subcommands

from .conftest import T0, KeyPair, build_trail, make_event, write_jsonl


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jitgrant")
    add_audit_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def trail_file(tmp_path: Path, keypair: KeyPair) -> Path:
    return write_jsonl(tmp_path / "audit.jsonl", build_trail(12, signer=keypair.signer, checkpoint_every=6))


def test_verify_passes_an_untouched_file(
    trail_file: Path, keypair: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audit", "verify", "--file", str(trail_file), "--public-key", str(keypair.public_pem)]) == 0
    out = capsys.readouterr().out
    assert "12 records (seq 1..12), 2 checkpoints (2 with a valid signature)" in out
    assert "OK: no tampering found" in out
    assert "proven: records 1..12 are intact and in order" in out


def test_verify_fails_an_edited_file_and_names_the_first_bad_seq(
    trail_file: Path, keypair: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = trail_file.read_text().splitlines()
    lines[3] = lines[3].replace("payments", "kube-system")
    trail_file.write_text("\n".join(lines) + "\n")
    argv = ["audit", "verify", "--file", str(trail_file), "--public-key", str(keypair.public_pem)]
    assert run(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED: first bad sequence number 4" in out and f"{trail_file}:4" in out

    assert run([*argv, "--output", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["firstBadSeq"] == 4
    assert report["findings"][0]["kind"] == "modified"


def test_verify_with_a_different_key_rejects_the_checkpoints(
    trail_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert run(["audit", "verify", "--file", str(trail_file), "--public-key", str(other)]) == 1
    assert "bad-checkpoint" in capsys.readouterr().out


def test_verify_reports_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "verify", "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("garbage")
    write_jsonl(tmp_path / "a.jsonl", build_trail(2))
    assert run(["audit", "verify", "--file", str(tmp_path / "a.jsonl"), "--public-key", str(not_a_key)]) == 2


def test_source_is_required_and_exclusive() -> None:
    with pytest.raises(SystemExit):
        run(["audit", "verify"])
    with pytest.raises(SystemExit):
        run(["audit", "verify", "--file", "a", "--s3", "s3://b/p"])


# Records name an EKS cluster by ARN; --cluster finds it by ARN or by name.
STAGING = "arn:aws:eks:us-east-1:111122223333:cluster/staging"


def review_trail(tmp_path: Path) -> Path:
    """Three requests: one expired after approval, one denied, one revoked in another cluster."""
    steps: list[tuple[EventType, dict[str, Any]]] = [
        (EventType.REQUESTED, {"uid": "a", "approver": None}),
        (EventType.APPROVAL_RECORDED, {"uid": "a"}),
        (EventType.GRANTED, {"uid": "a"}),
        (EventType.REQUESTED, {"uid": "b", "approver": None, "requester": "system:serviceaccount:ci:bot"}),
        (EventType.DENIED, {"uid": "b", "approver": None, "requester": "system:serviceaccount:ci:bot"}),
        (EventType.GRANTED, {"uid": "c", "approver": "bob@example.com", "cluster": STAGING}),
        (EventType.EXPIRED, {"uid": "a", "reason": "window ended"}),
        (EventType.REVOKED, {"uid": "c", "approver": "bob@example.com", "cluster": STAGING}),
    ]
    head, items = ChainHead(), []
    for minute, (type_, options) in enumerate(steps):
        event = make_event(type_, at=T0 + timedelta(minutes=minute * 10), **options)
        record = link(event, head=head, instance="op-1")
        head = ChainHead(record.seq, record.hash)
        items.append(record.to_wire())
    return write_jsonl(tmp_path / "review.jsonl", items)


def query(path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> list[dict[str, Any]]:
    assert run(["audit", "query", "--file", str(path), "--output", "json", *options]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


def test_query_lists_one_row_per_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = query(review_trail(tmp_path), capsys)
    assert [(row["requestUid"], row["outcome"]) for row in rows] == [
        ("a", "expired"),
        ("b", "denied"),
        ("c", "revoked"),
    ]
    expired = rows[0]
    assert (
        expired["requester"] == "system:serviceaccount:agents:oncall" and expired["provenBy"] == "kubernetes"
    )
    assert expired["scope"] == "clusterrole/jit-restart-deployments" and expired["namespace"] == "payments"
    assert expired["approvers"] == ["alice@example.com"] and expired["receipts"] == ["r-1"]
    assert expired["activatedAt"] == "2025-03-01T12:20:00Z" and expired["endedAt"] == "2025-03-01T13:00:00Z"
    assert expired["reason"] == "window ended"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--cluster", "staging"], ["c"]),
        (["--cluster", "arn:aws:eks:us-east-1:*"], ["c"]),
        (["--cluster", "prod-*"], ["a", "b"]),
        (["--requester", "system:serviceaccount:ci:*"], ["b"]),
        (["--approver", "alice@*"], ["a"]),
        (["--outcome", "revoked", "--outcome", "denied"], ["b", "c"]),
        (["--namespace", "payments", "--since", "2025-03-01T13:05:00"], ["c"]),
        (["--until", "2025-03-01T12:25:00+00:00"], ["a"]),
    ],
)
def test_query_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: list[str]
) -> None:
    assert [row["requestUid"] for row in query(review_trail(tmp_path), capsys, *options)] == expected


def test_query_prints_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "query", "--file", str(review_trail(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "REQUEST",
        "CLUSTER",
        "REQUESTER",
        "SCOPE",
        "ACTIVATED",
        "ENDED",
        "APPROVERS",
        "OUTCOME",
    ]
    assert len(out) == 4 and "expired: window ended" in out[1]


def test_query_warns_when_the_trail_does_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = review_trail(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert run(["audit", "query", "--file", str(path)]) == 0
    assert "does not verify" in capsys.readouterr().err


def _instance_trail(path: Path, instance: str, steps: list[tuple[EventType, int]]) -> Path:
    head, items = ChainHead(), []
    for type_, minute in steps:
        event = make_event(type_, uid="a", at=T0 + timedelta(minutes=minute)).model_copy(
            update={"transition_id": f"a/{type_.value}"}
        )
        record = link(event, head=head, instance=instance)
        head = ChainHead(record.seq, record.hash)
        items.append(record.to_wire())
    return write_jsonl(path, items)


def test_query_reads_every_replicas_trail_and_counts_a_repeated_transition_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 20 §5: replica a recorded `granted` and paused before its status write; replica b took
    the Lease over and recorded it again. One grant, one row, its activation from the first record;
    `verify` says a transition was recorded again, and that this is no tampering."""
    a = _instance_trail(
        tmp_path / "a.jsonl",
        "op-a",
        [(EventType.REQUESTED, 0), (EventType.APPROVED, 0), (EventType.ISSUING, 1), (EventType.GRANTED, 1)],
    )
    b = _instance_trail(
        tmp_path / "b.jsonl",
        "op-b",
        [(EventType.GRANTED, 1), (EventType.GRANTED, 1), (EventType.EXPIRED, 16)],
    )
    argv = ["audit", "query", "--file", str(a), "--file", str(b), "--output", "json"]
    assert run(argv) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["requestUid"], row["outcome"]) == ("a", "expired")
    assert row["requestedAt"] == "2025-03-01T12:00:00Z", "replica a's trail was not read"
    assert row["activatedAt"] == "2025-03-01T12:01:00Z" and row["endedAt"] == "2025-03-01T12:16:00Z"
    assert run(["audit", "verify", "--file", str(b), "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["repeatedTransitions"] == 1
    assert any("recorded again under the same transitionId" in note for note in report["notes"])
