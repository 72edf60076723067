"""How many audit records per second the file sink and the spool take on this machine.

Run: PYTHONPATH=operator python bench/audit_throughput.py [--records N] [--concurrent N]
Prints figures only; nothing here is a test (timings depend on the disk and on the neighbours).

The burst section is the operator's case: N grants recorded at once (`record_before_grant` from N
tasks, as kopf runs handlers), each awaiting its own durability. It prints wall time and CPU per
record (process time, every thread) beside two floors measured in the same run on the same disk:
a raw append with one fsync per record, and the same bytes with one fsync per 100.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
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
from jitgrant.audit.chain import ChainHead, link
from jitgrant.audit.config import FileSinkConfig
from jitgrant.audit.sinks.base import Entry
from jitgrant.audit.sinks.file import FileSink
from jitgrant.audit.spool import Spool


def sample_event(index: int) -> AuditEvent:
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


def entries(count: int) -> list[Entry]:
    head, result = ChainHead(), []
    for index in range(count):
        record = link(sample_event(index), head=head, instance="bench")
        head = ChainHead(record.seq, record.hash)
        result.append(Entry.of(record))
    return result


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} records/s  ({seconds * 1000 / count:.3f} ms each)"


async def bench_file_sink(directory: Path, items: list[Entry], *, batch: int, fsync: bool) -> float:
    sink = FileSink(FileSinkConfig(path=directory / f"file-{batch}-{fsync}.jsonl", fsync=fsync), name="file")
    await sink.start()
    start = time.perf_counter()
    for offset in range(0, len(items), batch):
        await sink.write(items[offset : offset + batch])
    return time.perf_counter() - start


def bench_spool(directory: Path, items: list[Entry], *, outage: bool) -> float:
    """Spooling alone. During an outage the backlog grows; otherwise sinks keep up and it shrinks."""
    sinks = ["file", "s3", "webhook"]  # spooling costs the same however many sinks there are
    spool = Spool(directory / f"spool-{outage}")
    spool.open(sinks)
    start = time.perf_counter()
    for entry in items:
        spool.put(entry)
        if not outage:
            for sink in sinks:
                spool.delivered(sink, entry.key)
    return time.perf_counter() - start


async def bench_trail(directory: Path, count: int, *, before_grant: bool) -> float:
    config = AuditConfig(
        sinks=(FileSinkConfig(path=directory / f"trail-{before_grant}.jsonl"),),
        spool_dir=directory / f"trail-spool-{before_grant}",
    )
    trail = AuditTrail.from_config(config, instance="bench")
    await trail.start()
    events = [sample_event(index) for index in range(count)]
    start = time.perf_counter()
    for event in events:
        await (trail.record_before_grant(event) if before_grant else trail.record(event))
    while trail.depth():  # noqa: ASYNC110 (until every record is delivered, not just spooled)
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    await trail.close()
    return elapsed


def raw_append(directory: Path, items: list[Entry], *, every: int) -> None:
    """The floor: the records' bytes appended to one file, fsynced every `every` records."""
    fd = os.open(directory / f"raw-{every}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        for offset in range(0, len(items), every):
            os.write(fd, b"".join(entry.line + b"\n" for entry in items[offset : offset + every]))
            os.fsync(fd)
    finally:
        os.close(fd)


async def burst(directory: Path, count: int) -> None:
    """`count` record_before_grant calls at once, until every record is also in the file sink."""
    config = AuditConfig(
        sinks=(FileSinkConfig(path=directory / "burst.jsonl"),),
        spool_dir=directory / "burst-spool",
    )
    trail = AuditTrail.from_config(config, instance="bench")
    await trail.start()
    events = [sample_event(index) for index in range(count)]
    await asyncio.gather(*(trail.record_before_grant(event) for event in events))
    while trail.depth():  # noqa: ASYNC110 (until every record is delivered, not just spooled)
        await asyncio.sleep(0.001)
    await trail.close()


def measured(run: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process, all threads) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def burst_line(label: str, count: int, wall: float, cpu: float, floor: tuple[float, float]) -> str:
    return (
        f"{label:<34} {count / wall:>8,.0f} records/s  {cpu * 1e6 / count:>6.0f} us CPU/record"
        f"  (x{wall / floor[0]:.2f} wall, x{cpu / floor[1]:.2f} CPU of the floor)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=1000, help="records in the burst")
    args = parser.parse_args()
    count = args.records
    items = entries(count)
    size = sum(len(entry.line) + 1 for entry in items) / count
    print(f"{count} records of {size:.0f} bytes each")
    with tempfile.TemporaryDirectory(prefix="jitgrant-bench-") as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        entries(count)
        print(f"chain (link + hash) only           {rate(count, time.perf_counter() - start)}")
        for batch, fsync in ((1, True), (100, True), (100, False)):
            elapsed = await bench_file_sink(directory, items, batch=batch, fsync=fsync)
            print(f"file sink, batch {batch:>3}, fsync={fsync!s:<5}  {rate(count, elapsed)}")
        for outage in (False, True):
            elapsed = await asyncio.to_thread(bench_spool, directory, items, outage=outage)
            label = "sinks down, backlog grows" if outage else "sinks keeping up"
            print(f"spool, {label:<27} {rate(count, elapsed)}")
        for before_grant in (False, True):
            elapsed = await bench_trail(directory, count, before_grant=before_grant)
            name = "record_before_grant" if before_grant else "record"
            print(f"trail.{name:<20} end to end {rate(count, elapsed)}")
        await asyncio.to_thread(bench_burst, directory, args.concurrent)


def bench_burst(directory: Path, count: int) -> None:
    items = entries(count)
    print(f"\nburst: {count} record_before_grant at once, against raw appends of the same bytes")
    floor = measured(lambda: raw_append(directory, items, every=1))
    print(burst_line("floor: raw append, fsync each", count, *floor, floor))
    grouped = measured(lambda: raw_append(directory, items, every=100))
    print(burst_line("raw append, fsync per 100", count, *grouped, floor))
    trail = measured(lambda: asyncio.run(burst(directory, count)))
    print(burst_line("trail, burst (spool + file sink)", count, *trail, floor))


if __name__ == "__main__":
    asyncio.run(main())
