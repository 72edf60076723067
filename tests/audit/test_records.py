from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from jitgrant.audit import AuditRecord, EventType
from jitgrant.audit.chain import ChainHead, canonical_json, link, record_hash
from jitgrant.audit.records import GENESIS_HASH

from .conftest import T0, make_event


def test_times_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = make_event(at=T0.astimezone(plus_two))
    assert event.time.tzinfo is not None and event.time.utcoffset() == timedelta(0)
    assert event.to_wire()["time"] == "2025-03-01T12:00:00Z"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError):
        make_event(at=datetime(2025, 3, 1, 12, 0))


def test_wire_form_is_camel_case_and_round_trips() -> None:
    record = link(make_event(), head=ChainHead(), instance="op-1")
    wire = record.to_wire()
    assert {"schemaVersion", "seq", "prevHash", "hash", "instance", "event"} <= wire.keys()
    assert {"requestUid", "requestName", "requestNamespace"} <= wire["event"].keys()
    assert wire["event"]["requester"]["provenBy"] == "kubernetes"
    assert AuditRecord.model_validate(json.loads(canonical_json(wire))) == record


def test_links_chain_each_record_to_the_previous_one() -> None:
    first = link(make_event(), head=ChainHead(), instance="op-1")
    second = link(make_event(EventType.EXPIRED), head=ChainHead(first.seq, first.hash), instance="op-1")
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert record_hash(second.to_wire()) == second.hash


def test_hash_covers_every_field() -> None:
    wire = link(make_event(), head=ChainHead(), instance="op-1").to_wire()
    wire["event"]["scope"]["namespace"] = "kube-system"
    assert record_hash(wire) != wire["hash"]


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "é": "ü"}) == '{"a":[1,2],"b":1,"é":"ü"}'.encode()
