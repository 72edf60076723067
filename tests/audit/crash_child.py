"""Run by test_crash.py as a process of its own: grants in bursts, each grant made only once its
audit record is durable, until the test SIGKILLs it.

argv: CONFIG_JSON GRANTS_DIR COUNT HOLD_AT_BATCH. A "grant" is a file GRANTS_DIR/<request uid>,
created after `record_before_grant` returned, as the operator creates a RoleBinding after it.
With HOLD_AT_BATCH > 0 the spool's writer thread stops right after writing (and fsyncing) that
batch, if it holds records, and says which records it holds: the test kills the process there,
between the batch write and the grants it allows.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from jitgrant.audit import (
    AuditConfig,
    AuditEvent,
    AuditTrail,
    EventType,
    RequesterRecord,
    ScopeRecord,
    WindowRecord,
)
from jitgrant.audit.sinks import Entry
from jitgrant.audit.spool import Spool

WAVE = 50  # grants filed at once, as kopf runs that many handlers at a time


def event(index: int) -> AuditEvent:
    return AuditEvent(
        type=EventType.GRANTED,
        time=datetime.now(UTC),
        request_uid=f"uid-{index}",
        request_name=f"restart-checkout-{index}",
        request_namespace="agents",
        policy="oncall-restart",
        cluster="prod-eu",
        requester=RequesterRecord(username="system:serviceaccount:agents:oncall", proven_by="kubernetes"),
        scope=ScopeRecord(namespace="payments", cluster_role="jit-restart-deployments"),
        window=WindowRecord(requested_duration_seconds=900),
    )


class HeldSpool(Spool):
    """The real spool, whose writer stops for good after the `hold_at`-th batch holding records."""

    hold_at = 0
    _written = 0

    def put_batch(self, entries: Sequence[Entry]) -> None:
        super().put_batch(entries)
        records = [str(entry.seq) for entry in entries if entry.kind == "record"]
        if records:
            self._written += 1
        if records and self._written == self.hold_at:
            print("written " + " ".join(records), flush=True)
            threading.Event().wait()  # until SIGKILL


async def main(config: AuditConfig, grants: Path, count: int, hold_at: int) -> None:
    trail = AuditTrail.from_config(config, instance="op-1")
    spool = HeldSpool(config.spool_dir)
    spool.hold_at = hold_at
    trail._spool = spool  # the same class with a stop in it; nothing else differs
    await trail.start()
    print("started", flush=True)

    async def grant(index: int) -> None:
        await trail.record_before_grant(event(index))
        os.close(os.open(grants / f"uid-{index}", os.O_WRONLY | os.O_CREAT, 0o640))

    for wave in range(0, count, WAVE):
        await asyncio.gather(*(grant(index) for index in range(wave, min(count, wave + WAVE))))
    print("done", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    config = AuditConfig.model_validate_json(Path(sys.argv[1]).read_text())
    asyncio.run(main(config, Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
