"""Issue 24 §7: rows `list --watch` prints as a request moves on stay aligned with the first ones."""

from __future__ import annotations

import io
from typing import Any

from jitgrant.cli.requests import Table


def request(phase: str | None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "restart-x7k2p",
            "namespace": "agents",
            "creationTimestamp": "2026-12-07T16:00:00Z",
        },
        "spec": {
            "policy": "prod-restart",
            "namespace": "payments",
            "clusterRole": "jit-restart-checkout",
            "justification": "INC-1",
            "requester": {"username": "system:serviceaccount:agents:oncall-agent"},
        },
        "status": {"phase": phase, **status} if phase else {},
    }


def test_later_rows_line_up_with_the_first() -> None:
    out = io.StringIO()
    table = Table(namespaced=True, wide=False, out=out)
    table.print([request(None)])
    for later in (
        request("Pending"),
        request("Active", expiresAt="2026-12-07T16:10:00Z"),
        request("Revoked", expiresAt="2026-12-07T16:10:00Z", endedAt="2026-12-07T16:05:00Z"),
    ):
        table.print([later], header=False)
    header, *rows = out.getvalue().splitlines()
    columns = [header.index(column) for column in header.split()]
    for row in rows:
        # Every cell starts where its column's header does (after the gap of the one before).
        for at in columns[1:]:
            assert row[at - 2 : at] == "  " and row[at] != " ", (header, row, at)
