"""EKS control-plane audit logs in CloudWatch Logs (moto's logs backend on 127.0.0.1): the real
log group and stream names, paging, throttling, and the log group missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from jitgrant.activity.sources import CloudWatchAuditLogs, SourceError, Window

from .conftest import audit_event

# CloudWatch refuses events older than 14 days, so this trail is recent.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
WINDOW = Window(start=T0, end=T0 + timedelta(minutes=15), terms=frozenset({"oncall"}))


@pytest.fixture
def logs(endpoint: str) -> Iterator[Any]:
    client = boto3.client("logs", endpoint_url=endpoint, region_name="eu-west-1")
    group = "/aws/eks/prod-eu/cluster"
    client.create_log_group(logGroupName=group)
    streams = {
        "kube-apiserver-audit-0123456789abcdef": [
            audit_event(verb="get", audit_id=f"a{index}", at=T0 + timedelta(seconds=index))
            for index in range(7)
        ],
        "authenticator-0123456789abcdef": [audit_event(verb="list", audit_id="not-audit")],
    }
    for stream, events in streams.items():
        client.create_log_stream(logGroupName=group, logStreamName=stream)
        client.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[
                {"timestamp": int(T0.timestamp() * 1000) + index * 1000, "message": json.dumps(event)}
                for index, event in enumerate(events)
            ],
        )
    yield client
    client.delete_log_group(logGroupName=group)
    client.close()


class Throttled:
    """The real client, refusing the first `times` calls as CloudWatch does under load."""

    def __init__(self, client: Any, times: int) -> None:
        self.client, self.times, self.calls = client, times, 0

    def filter_log_events(self, **request: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "FilterLogEvents")  # type: ignore[arg-type]
        return self.client.filter_log_events(**request)


def test_every_page_of_the_audit_streams_is_read(logs: Any) -> None:
    counting = Throttled(logs, times=0)
    source = CloudWatchAuditLogs(cluster="prod-eu", client=counting, page_size=2)  # type: ignore[arg-type]
    calls = list(source.calls(WINDOW))
    # Only the kube-apiserver-audit-* stream's events, over at least 4 pages of 2.
    assert [call.audit_id for call in calls] == [f"a{index}" for index in range(7)]
    assert counting.calls >= 4


def test_throttling_is_retried_with_backoff(logs: Any) -> None:
    pauses: list[float] = []
    throttled = Throttled(logs, times=2)
    source = CloudWatchAuditLogs(cluster="prod-eu", client=throttled, sleep=pauses.append, backoff=0.5)  # type: ignore[arg-type]
    assert len(list(source.calls(WINDOW))) == 7
    assert pauses == [0.5, 1.0]


def test_throttling_that_does_not_pass_is_a_clear_message(logs: Any) -> None:
    throttled: Any = Throttled(logs, times=99)  # a stand-in for the boto3 client, duck-typed
    source = CloudWatchAuditLogs(cluster="prod-eu", client=throttled, sleep=lambda _: None, retries=2)
    with pytest.raises(
        SourceError, match=r"kept throttling the reads of /aws/eks/prod-eu/cluster \(3 tries\)"
    ):
        list(source.calls(WINDOW))


def test_a_missing_log_group_says_audit_logging_is_off_and_how_to_turn_it_on(endpoint: str) -> None:
    source = CloudWatchAuditLogs(cluster="staging", region="eu-west-1", endpoint_url=endpoint)
    with pytest.raises(SourceError) as caught:
        list(source.calls(WINDOW))
    message = str(caught.value)
    assert "/aws/eks/staging/cluster does not exist: control-plane audit logging is off" in message
    assert "aws eks update-cluster-config --name staging" in message and '"types":["audit"]' in message
