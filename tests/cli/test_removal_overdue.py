"""`jitgrant get -o wide` and `jitgrant describe` show a grant whose removal is overdue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jitgrant.cli.describe import Paint, describe_request
from jitgrant.cli.requests import row_of

ARN = "arn:aws:eks:us-east-1:111122223333:cluster/fleet-000"
MESSAGE = (
    f"the grant expired, but its removal from cluster {ARN} is overdue since 2026-01-01T12:10:00Z: "
    "could not reach the API server (ClusterUnreachable); next attempt at 2026-01-01T12:10:31Z"
)


def request(*, overdue: bool) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [
        {
            "type": "Granted",
            "status": "True",
            "reason": "Granted",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
        }
    ]
    if overdue:
        conditions.append(
            {
                "type": "RemovalOverdue",
                "status": "True",
                "reason": "ClusterUnreachable",
                "message": MESSAGE,
                "lastTransitionTime": "2026-01-01T12:10:00Z",
            }
        )
    return {
        "metadata": {"namespace": "agents", "name": "fix", "creationTimestamp": "2026-01-01T12:00:00Z"},
        "spec": {
            "policy": "p",
            "namespace": "payments",
            "clusterRole": "view",
            "requester": {"username": "a"},
        },
        "status": {
            "phase": "Active",
            "reason": "RemovalOverdue" if overdue else "Granted",
            "message": MESSAGE if overdue else "view in payments",
            "expiresAt": "2026-01-01T12:10:00Z",
            "conditions": conditions,
        },
    }


def test_get_wide_shows_since_when_the_removal_is_overdue() -> None:
    now = datetime(2026, 1, 1, 12, 11, tzinfo=UTC)
    row = row_of(request(overdue=True), now, wide=True)
    assert row["REMOVAL-OVERDUE"] == "2026-01-01T12:10:00Z" and row["REASON"] == "RemovalOverdue"
    assert row_of(request(overdue=False), now, wide=True)["REMOVAL-OVERDUE"] == "-"
    assert "REMOVAL-OVERDUE" not in row_of(request(overdue=True), now)  # the narrow table stays as it was


def test_describe_shows_the_overdue_removal_with_cluster_and_next_attempt() -> None:
    paint = Paint(enabled=False)
    text = describe_request(
        request(overdue=True), cluster_role_rules=[], cluster_role_error=None, policy_spec=None, paint=paint
    )
    assert "Removal:        OVERDUE since 2026-01-01T12:10:00Z (ClusterUnreachable)" in text
    assert f"RemovalOverdue: {MESSAGE}" in text
    quiet = describe_request(
        request(overdue=False), cluster_role_rules=[], cluster_role_error=None, policy_spec=None, paint=paint
    )
    assert "OVERDUE" not in quiet
