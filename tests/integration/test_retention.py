"""Finished requests do not pile up: with `finished_retention` at 2 s, a Denied and an Expired request
are deleted about 2 s after they ended, an Active one stays, the trail says `removed` after how each
ended, and `jitgrant audit verify` still passes. One past its retention while the operator was down
goes when it starts again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jitgrant.cli.main import main as jitgrant
from jitgrant.reactor.runtime import Runtime
from jitgrant_testing.environment import EXAMPLES, Environment, load_manifests

from .conftest import phase_of, request_manifest, wait_for_phase, wait_until

RETENTION = timedelta(seconds=2)


def _short_retention(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.model_copy(update={"finished_retention": RETENTION})


@pytest.fixture
def env() -> Iterator[Environment]:
    with Environment(sweep_interval=timedelta(seconds=1), runtime_hook=_short_retention) as environment:
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "clusterrole.yaml"))
        environment.apply(load_manifests(EXAMPLES / "oncall-restart" / "policy.yaml"))
        environment.create_deployment("payments", "checkout")
        environment.allow_to_request("agents", service_account="oncall-agent")
        yield environment


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _gone(env: Environment, name: str) -> datetime | None:
    try:
        env.get_request("agents", name)
    except ApiException as exc:
        if exc.status == 404:
            return datetime.now(UTC)
        raise
    return None


def _records(env: Environment) -> list[dict[str, Any]]:
    lines = env.audit_file.read_text().splitlines()
    return [r for line in lines if line.strip() and (r := json.loads(line)).get("kind") == "record"]


def _types(env: Environment, uid: str) -> list[str]:
    return [r["event"]["type"] for r in _records(env) if r["event"]["requestUid"] == uid]


def _until_removed(env: Environment, uid: str) -> list[str]:
    """The request's audit record types, once the last one is its removal (delivery is async)."""

    def removed() -> list[str] | None:
        types = _types(env, uid)
        return types if types and types[-1] == "removed" else None

    found: list[str] = wait_until(removed, what=f"the removal record of {uid}")
    return found


def test_denied_and_expired_requests_go_after_the_retention_and_an_active_one_stays(
    env: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest("stays", duration="10m"), client=agent)
    env.create_request(request_manifest("expires", duration="3s"), client=agent)
    env.create_request(request_manifest("refused", namespace="orders"), client=agent)

    # One loop watches both, so each removal is timed from when it happened, not from when a
    # sequential wait got round to it; the last status seen before it went says how it ended.
    last: dict[str, dict[str, Any]] = {}
    gone_at: dict[str, datetime] = {}

    def both_gone() -> bool | None:
        for name in ("refused", "expires"):
            if name in gone_at:
                continue
            try:
                last[name] = env.get_request("agents", name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                gone_at[name] = datetime.now(UTC)
        return len(gone_at) == 2 or None

    wait_until(both_gone, timeout=25, what="the Denied and the Expired request to be removed")
    assert last["refused"]["status"]["phase"] == "Denied"
    assert last["expires"]["status"]["phase"] == "Expired"
    uids = {name: body["metadata"]["uid"] for name, body in last.items()}
    lags = {name: (gone_at[name] - _parse(last[name]["status"]["endedAt"])).total_seconds() for name in last}
    # endedAt has second precision: removed no earlier than the retention, and within a few seconds.
    for name, lag in lags.items():
        assert RETENTION.total_seconds() - 1 <= lag < RETENTION.total_seconds() + 8, (name, lags)
    assert phase_of(env, "agents", "stays") == "Active"
    with capsys.disabled():
        print(f"\nremoved this long after endedAt (retention {RETENTION}): {lags}")

    time.sleep(RETENTION.total_seconds() + 1)
    assert phase_of(env, "agents", "stays") == "Active"  # never removed while live

    for name, ending in (("refused", "denied"), ("expires", "expired")):
        types = _until_removed(env, uids[name])
        assert types[-2:] == [ending, "removed"] and types.count("removed") == 1
    [removal] = [
        r for r in _records(env) if r["event"]["type"] == "removed" and r["event"]["requestName"] == "refused"
    ]
    assert removal["event"]["decision"] == "removed"
    assert "Denied since" in removal["event"]["reason"] and "retention of 2s" in removal["event"]["reason"]

    env.operator.stop()  # the trail is complete and closed (a shutdown checkpoint, no half line)
    capsys.readouterr()
    verified = jitgrant(["audit", "verify", "--file", str(env.audit_file)])
    out = capsys.readouterr().out
    assert verified == 0 and "OK: the chain's links and hashes" in out, out


def test_a_request_past_its_retention_while_the_operator_was_down_goes_at_start_up(env: Environment) -> None:
    agent = env.client_for_service_account("agents", "oncall-agent")
    env.create_request(request_manifest("refused", namespace="orders"), client=agent)
    denied = wait_for_phase(env, "agents", "refused", "Denied")
    env.operator.stop()
    ended = _parse(denied["status"]["endedAt"])
    if datetime.now(UTC) < ended + RETENTION:
        time.sleep((ended + RETENTION - datetime.now(UTC)).total_seconds() + 1)
    assert _gone(env, "refused") is None, "nothing else removes it while the operator is down"

    started = time.monotonic()
    env.start_operator()
    wait_until(lambda: _gone(env, "refused"), timeout=10, what="the request to be removed at start-up")
    assert time.monotonic() - started < 10
    types = _until_removed(env, denied["metadata"]["uid"])
    assert types.count("removed") == 1
