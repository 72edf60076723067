"""When a grant ends, an activity-summary record (counts by verb and resource, refusals, first and
last call) is chained into the trail like every other record, verified by `audit verify` and shown
by `audit query --with-activity`."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from jitgrant.activity.attribution import GrantIdentity, activity
from jitgrant.activity.events import parse_lines
from jitgrant.activity.summary import summarize
from jitgrant.audit import AuditConfig, AuditTrail
from jitgrant.audit.chain import verify_chain
from jitgrant.audit.readers import read_file
from jitgrant.audit.records import AuditEvent, EventType, RequesterRecord, ScopeRecord, WindowRecord
from jitgrant.cli.main import main as run

from .conftest import AGENT, T0, audit_event, jsonl

END = T0 + timedelta(minutes=15)


def agent_log() -> bytes:
    return jsonl(
        audit_event(verb="get", audit_id="1", at=T0 + timedelta(minutes=1)),
        audit_event(verb="patch", audit_id="2", at=T0 + timedelta(minutes=2)),
        audit_event(verb="delete", code=403, name="ledger", audit_id="3", at=T0 + timedelta(minutes=3)),
        audit_event(verb="delete", code=403, name="ledger", audit_id="4", at=T0 + timedelta(minutes=4)),
        audit_event(verb="get", audit_id="5", at=END + timedelta(minutes=5), reason=""),  # after the end
    )


def test_summarize_counts_by_verb_resource_and_refusal() -> None:
    grant = GrantIdentity(
        binding_name="jit-restart-checkout",
        binding_namespace="payments",
        usernames=frozenset({AGENT}),
        start=T0,
        end=END,
    )
    summary = summarize(activity(parse_lines(agent_log().splitlines()), grant))
    assert (summary.calls, summary.allowed_by_grant, summary.refused, summary.exact) == (4, 2, 2, 2)
    assert summary.by_verb == {"delete": 2, "get": 1, "patch": 1}
    assert summary.by_resource == {"apps/deployments": 4}
    assert summary.refused_by_resource == {"delete apps/deployments": 2}
    assert (summary.first_call, summary.last_call) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=4))


def ended_event(event_type: EventType = EventType.EXPIRED, *, cluster: str = "prod-eu") -> AuditEvent:
    return AuditEvent(
        type=event_type,
        time=END,
        request_uid="uid-1",
        request_name="restart-checkout",
        request_namespace="agents",
        policy="oncall-restart",
        cluster=cluster,
        requester=RequesterRecord(username=AGENT, proven_by="kubernetes"),
        scope=ScopeRecord(namespace="payments", cluster_role="jit-restart"),
        window=WindowRecord(activated_at=T0, expires_at=END, ended_at=END),
        decision="Expired",
        binding="jit-restart-checkout",
    )


def config(tmp_path: Path, log: Path) -> AuditConfig:
    return AuditConfig.model_validate(
        {
            "sinks": [{"type": "file", "path": str(tmp_path / "trail.jsonl")}],
            "spoolDir": str(tmp_path / "spool"),
            "activity": {"sources": {"prod-eu": {"type": "file", "path": str(log)}}, "delaySeconds": 0},
        }
    )


async def wait_for_summary(seen: list[AuditEvent]) -> None:
    async with asyncio.timeout(10):
        while not seen:  # noqa: ASYNC110 (the trail reports through a plain callback)
            await asyncio.sleep(0.01)


async def test_the_end_of_a_grant_chains_its_activity_summary_into_the_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(agent_log())
    trail = AuditTrail.from_config(config(tmp_path, log), instance="op-1")
    seen: list[AuditEvent] = []
    trail.on_activity_summary = seen.append
    await trail.start()
    await trail.record(ended_event(cluster="staging"))  # no source for that cluster: no summary
    await trail.record(ended_event())
    await wait_for_summary(seen)
    await trail.close()

    lines = read_file(tmp_path / "trail.jsonl")
    assert verify_chain(lines).ok
    records = [json.loads(line.data) for line in lines if b'"kind":"record"' in line.data]
    assert [record["event"]["type"] for record in records] == ["expired", "expired", "activity-summary"]
    activity_record = records[-1]["event"]["activity"]
    assert (activity_record["calls"], activity_record["refused"], activity_record["allowedByGrant"]) == (
        4,
        2,
        2,
    )
    assert activity_record["refusedByResource"] == {"delete apps/deployments": 2}
    assert activity_record["source"] == f"audit log {log}"

    assert run(["audit", "query", "--file", str(tmp_path / "trail.jsonl"), "--with-activity"]) == 0
    out = capsys.readouterr().out
    assert (
        "activity: 4 calls (delete 2, get 1, patch 1, 12:01:00..12:04:00): 2 by this grant, "
        "0 by something else, 2 refused (delete apps/deployments x2)" in out
    )
    assert (
        run(
            ["audit", "query", "--file", str(tmp_path / "trail.jsonl"), "--with-activity", "--output", "json"]
        )
        == 0
    )
    [row] = json.loads(capsys.readouterr().out)
    assert row["outcome"] == "expired" and row["activity"]["calls"] == 4


async def test_an_unreadable_log_is_recorded_as_not_known(tmp_path: Path) -> None:
    trail = AuditTrail.from_config(config(tmp_path, tmp_path / "missing.log"), instance="op-1")
    seen: list[AuditEvent] = []
    trail.on_activity_summary = seen.append
    await trail.start()
    await trail.record(ended_event(EventType.REVOKED))
    await wait_for_summary(seen)
    await trail.close()
    [summary] = seen
    assert summary.activity is not None and summary.activity.calls == 0
    assert summary.activity.error is not None and "does not exist" in summary.activity.error


async def test_refused_calls_are_counted_per_policy_for_the_alert(tmp_path: Path) -> None:
    from jitgrant.metrics import Metrics

    log = tmp_path / "audit.log"
    log.write_bytes(agent_log())
    metrics = Metrics()
    trail = AuditTrail.from_config(config(tmp_path, log), instance="op-1")
    seen: list[AuditEvent] = []

    def count(event: AuditEvent) -> None:  # as jitgrant.operator.runner wires it
        seen.append(event)
        refused = event.activity.refused if event.activity else 0
        metrics.agent_calls_refused(policy=event.policy or "", count=refused)

    trail.on_activity_summary = count
    await trail.start()
    await trail.record(ended_event())
    await wait_for_summary(seen)
    await trail.close()
    value = metrics.registry.get_sample_value(
        "jitgrant_agent_refused_calls_total", {"policy": "oncall-restart"}
    )
    assert value == 2
