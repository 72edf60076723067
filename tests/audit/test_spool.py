"""The spool keeps what some sink lacks, keeps the chain's head, and survives a reopen."""

from __future__ import annotations

import json
from pathlib import Path

from jitgrant.audit.chain import ChainHead, link
from jitgrant.audit.checkpoint import CheckpointSigner
from jitgrant.audit.sinks.base import Entry
from jitgrant.audit.spool import Spool

from .conftest import T0, KeyPair, make_event


def entries(count: int) -> list[Entry]:
    head, result = ChainHead(), []
    for _ in range(count):
        record = link(make_event(), head=head, instance="op-1")
        head = ChainHead(record.seq, record.hash)
        result.append(Entry.of(record))
    return result


def reopen(path: Path, sinks: list[str]) -> Spool:
    spool = Spool(path)
    spool.open(sinks)
    return spool


def test_each_sink_gets_what_it_has_not_accepted(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a", "b"])
    items = entries(5)
    for entry in items:
        spool.put(entry)
    spool.delivered("a", items[3].key)
    spool.delivered("b", items[1].key)

    again = reopen(tmp_path, ["a", "b"])
    assert [entry.seq for entry in again.queued("a")] == [5]
    assert [entry.seq for entry in again.queued("b")] == [3, 4, 5]
    assert [entry.line for entry in again.queued("b")] == [entry.line for entry in items[2:]]
    assert sorted(path.stem for path in (tmp_path / "entries").iterdir()) == [e.key for e in items[2:]]


def test_head_survives_full_delivery_and_reopen(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a"])
    items = entries(3)
    for entry in items:
        spool.put(entry)
    spool.delivered("a", items[-1].key)
    assert [path.stem for path in (tmp_path / "entries").iterdir()] == [items[-1].key]  # kept as head
    again = reopen(tmp_path, ["a"])
    assert again.queued("a") == []
    last = link(make_event(), head=again.head(), instance="op-1")
    assert last.seq == 4


def test_checkpoints_are_spooled_after_their_record(tmp_path: Path, keypair: KeyPair) -> None:
    signer: CheckpointSigner = keypair.signer
    spool = reopen(tmp_path, ["a"])
    items = entries(2)
    checkpoint = Entry.of(signer.sign(instance="op-1", head=ChainHead(2, "h"), time=T0))
    for entry in [*items, checkpoint]:
        spool.put(entry)
    assert [entry.kind for entry in reopen(tmp_path, ["a"]).queued("a")] == ["record", "record", "checkpoint"]


def test_a_new_sink_receives_whatever_is_still_spooled(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a"])
    items = entries(3)
    for entry in items:
        spool.put(entry)
    spool.delivered("a", items[0].key)
    again = reopen(tmp_path, ["a", "b"])
    assert [entry.seq for entry in again.queued("b")] == [2, 3]
    assert reopen(tmp_path, ["b"]).unknown_sinks() == ["a"]


def test_a_batch_is_one_file_kept_until_every_sink_has_all_of_it(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a", "b"])
    items = entries(7)
    spool.put_batch(items[:3])
    spool.put_batch(items[3:6])
    spool.put(items[6])
    assert sorted(path.stem for path in (tmp_path / "entries").iterdir()) == [
        items[0].key,
        items[3].key,
        items[6].key,
    ]
    spool.delivered("a", items[4].key)
    spool.delivered("b", items[6].key)
    # "a" lacks the end of the second batch: it stays whole, the first goes.
    assert sorted(path.stem for path in (tmp_path / "entries").iterdir()) == [items[3].key, items[6].key]
    again = reopen(tmp_path, ["a", "b"])
    assert [entry.line for entry in again.queued("a")] == [entry.line for entry in items[5:]]
    assert again.queued("b") == []
    assert again.head() == ChainHead(7, json.loads(items[6].line)["hash"])


def test_the_batch_holding_the_head_is_kept(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a"])
    items = entries(4)
    spool.put_batch(items)
    spool.delivered("a", items[-1].key)
    assert [path.stem for path in (tmp_path / "entries").iterdir()] == [items[0].key]
    assert reopen(tmp_path, ["a"]).head().seq == 4


def test_cursors_are_saved_at_most_once_a_second_and_at_shutdown(tmp_path: Path) -> None:
    spool = reopen(tmp_path, ["a", "b"])
    items = entries(4)
    for entry in items:
        spool.put(entry)
    cursor = tmp_path / "cursors" / "a.json"
    spool.delivered("a", items[0].key)
    assert json.loads(cursor.read_text()) == {"key": items[0].key}
    spool.delivered("a", items[1].key)  # within the second: in memory only
    assert json.loads(cursor.read_text()) == {"key": items[0].key}
    # A crash now delivers entry 2 to "a" again (a repeat readers skip); nothing is skipped.
    assert [entry.seq for entry in reopen(tmp_path, ["a", "b"]).queued("a")] == [2, 3, 4]
    spool.save_cursors()
    assert [entry.seq for entry in reopen(tmp_path, ["a", "b"]).queued("a")] == [3, 4]
