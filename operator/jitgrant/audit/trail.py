"""The audit trail the operator writes to: chains events, spools them, delivers them to every sink.

Two promises, matching the security invariant:

* `record_before_grant` returns only once the record is durable (fsynced to the spool, or accepted
  by every sink when the spool cannot be written); otherwise it raises `AuditUnavailable` and the
  operator does not grant: access fails closed.
* `record` never waits on a sink and never raises for sink trouble: the record is spooled and each
  sink's worker retries it with backoff until delivered, so a revocation is never held up.

Each sink has its own queue and worker and receives entries strictly in sequence order, so one slow
sink delays nobody else and a retry never reorders a chain (at worst it repeats an entry, which
readers recognise as a duplicate and skip).

Group commit: linking a record into the chain is immediate (no I/O, so no lock is held across an
await), and the record joins the batch being gathered. One writer task spools a batch at a time:
every record that arrives while a batch is being written joins the next one, so a burst of N
grants costs a handful of fsyncs instead of 2N, while each caller still waits for its own batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jitgrant.activity.attribution import GrantIdentity
from jitgrant.audit.activity import ActivityReader
from jitgrant.audit.chain import ChainHead, link
from jitgrant.audit.checkpoint import CheckpointRef, CheckpointSigner
from jitgrant.audit.config import AuditConfig
from jitgrant.audit.records import AuditEvent, AuditRecord, Checkpoint, CheckpointReason
from jitgrant.audit.sinks import Entry, Sink, build_sink
from jitgrant.audit.spool import Spool

logger = logging.getLogger("jitgrant.audit")

Clock = Callable[[], datetime]


class AuditUnavailable(Exception):
    """The audit record of a grant could not be made durable; the grant must not be issued.

    The message says why, in words fit for the request's status.
    """


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _describe(exc: BaseException) -> str:
    # Exception texts from boto3/aiohttp name endpoints and reasons, never our secrets (which are
    # read from files and only ever placed in headers or signatures).
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _SinkQueue:
    """One sink's undelivered entries, oldest first, and the worker that delivers them."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending: dict[str, Entry] = {}  # by key, oldest first
        self.changed = asyncio.Condition()
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def add(self, entries: list[Entry]) -> None:
        async with self.changed:
            for entry in entries:
                self.pending[entry.key] = entry
            self.changed.notify_all()

    async def wait_delivered(self, key: str) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: key not in self.pending)

    async def wait_empty(self) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: not self.pending)


class _Batch:
    """Entries waiting to be spooled together, and the answer their callers wait for: None once
    they are durable in the spool, else why the spool failed (they are then queued in memory)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.spooled: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()


class AuditTrail:
    def __init__(
        self,
        *,
        sinks: Sequence[Sink],
        spool_dir: Path,
        instance: str,
        signer: CheckpointSigner | None = None,
        acceptance: Literal["spool", "sinks"] = "spool",
        acceptance_timeout: float = 5.0,
        checkpoint_interval: float = 300.0,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        batch_size: int = 100,
        close_timeout: float = 5.0,
        clock: Clock = _utcnow,
        activity: ActivityReader | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("an audit trail needs at least one sink")
        self.instance = instance
        self._spool = Spool(spool_dir)
        self._queues = [_SinkQueue(sink) for sink in sinks]
        self._signer = signer
        self._acceptance = acceptance
        self._acceptance_timeout = acceptance_timeout
        self._checkpoint_interval = checkpoint_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._batch_size = batch_size
        self._close_timeout = close_timeout
        self._clock = clock
        self._lock = asyncio.Lock()  # checkpoints one at a time: each names the one before
        self._head = ChainHead()
        self._gathering: _Batch | None = None  # the batch new entries join
        self._ready = asyncio.Event()  # set when `_gathering` has entries for the writer
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False
        self._alone = asyncio.Lock()  # entries made after the writer stopped, written one by one
        self._last_checkpoint: CheckpointRef | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._started = False
        #: Called with the sink's name on every failed delivery attempt (the operator counts them).
        self.on_delivery_failure: Callable[[str], None] | None = None
        self._activity = activity
        self._activity_tasks: set[asyncio.Task[None]] = set()
        #: Called with each activity-summary event once it is recorded (the operator counts refusals).
        self.on_activity_summary: Callable[[AuditEvent], None] | None = None

    @classmethod
    def from_config(cls, config: AuditConfig, *, instance: str, clock: Clock = _utcnow) -> AuditTrail:
        sinks = [
            build_sink(sink, name=name, instance=instance)
            for sink, name in zip(config.sinks, config.sink_names(), strict=True)
        ]
        signer = None
        if config.signing_key_path is not None:
            signer = CheckpointSigner.from_pem(Path(config.signing_key_path).read_bytes())
        return cls(
            sinks=sinks,
            spool_dir=config.spool_dir,
            instance=instance,
            signer=signer,
            acceptance=config.acceptance,
            acceptance_timeout=config.acceptance_timeout_seconds,
            checkpoint_interval=config.checkpoint_interval_seconds,
            retry_initial=config.retry_initial_seconds,
            retry_max=config.retry_max_seconds,
            batch_size=config.batch_size,
            close_timeout=config.close_timeout_seconds,
            clock=clock,
            activity=ActivityReader(config.activity) if config.activity is not None else None,
        )

    @property
    def activity(self) -> ActivityReader | None:
        """The configured activity sources (None: no audit.activity), which the idle end reads too."""
        return self._activity

    @property
    def head(self) -> ChainHead:
        return self._head

    def depth(self) -> int:
        """Entries (records and checkpoints) not yet delivered to every sink."""
        return len({key for queue in self._queues for key in queue.pending})

    def undelivered(self) -> dict[str, int]:
        """Per sink: entries it has not accepted yet."""
        return {queue.sink.name: len(queue.pending) for queue in self._queues}

    def last_errors(self) -> dict[str, str | None]:
        return {queue.sink.name: queue.last_error for queue in self._queues}

    async def start(self) -> None:
        """Opens the spool, resumes the chain where it stopped, and starts delivering the backlog.

        Raises `AuditUnavailable` if the spool cannot be read: without the chain's head, records
        written now could not continue the chain.
        """
        names = [queue.sink.name for queue in self._queues]
        try:
            await asyncio.to_thread(self._spool.open, names)
            self._head = await asyncio.to_thread(self._spool.head)
            self._last_checkpoint = await asyncio.to_thread(self._spool.last_checkpoint)
            for queue in self._queues:
                for entry in await asyncio.to_thread(self._spool.queued, queue.sink.name):
                    queue.pending[entry.key] = entry
            orphans = self._spool.unknown_sinks()
        except (OSError, ValueError, KeyError) as exc:
            raise AuditUnavailable(f"audit spool {self._spool.directory} cannot be read: {exc}") from exc
        if orphans:
            logger.warning("audit spool has progress of sinks no longer configured (ignored): %s", orphans)
        self._stopping = False
        self._writer = asyncio.create_task(self._write_batches(), name="audit-spool-writer")
        for queue in self._queues:
            try:
                await queue.sink.start()
            except Exception as exc:  # a sink that is down now is retried by its worker
                queue.last_error = _describe(exc)
                logger.warning("audit sink %s did not start: %s", queue.sink.name, queue.last_error)
            queue.task = asyncio.create_task(self._deliver(queue), name=f"audit-sink-{queue.sink.name}")
        self._started = True
        if self._signer is not None:
            # Marks where this run picks the chain up; the gap since the last "shutdown" (or the
            # last heartbeat, after a crash) is then visible to the verifier as downtime.
            await self.checkpoint(reason="start")
            self._checkpoint_task = asyncio.create_task(self._checkpoints(), name="audit-checkpoints")
        logger.info(
            "audit trail started: instance %s, head seq %d, %d entries to deliver",
            self.instance,
            self._head.seq,
            self.depth(),
        )

    async def record_before_grant(self, event: AuditEvent) -> AuditRecord:
        """Records that a grant is about to be issued; returns only once the record is durable."""
        record, spool_error = await self._append(event)
        if spool_error is None and self._acceptance == "spool":
            return record
        # Not on disk (or the sinks themselves are required): it must reach every sink in time.
        key = Entry.of(record).key
        if await self._all_within(
            [queue.wait_delivered(key) for queue in self._queues], seconds=self._acceptance_timeout
        ):
            return record
        missing = [queue for queue in self._queues if key in queue.pending]
        reasons = []
        if spool_error is not None:
            reasons.append(f"the local audit spool cannot be written ({spool_error})")
        reasons.append(
            f"not delivered within {self._acceptance_timeout:g}s to "
            + ", ".join(f"{queue.sink.name} ({queue.last_error or 'no answer yet'})" for queue in missing)
        )
        # The record stays queued and will be delivered: the operator should follow it with a
        # "failed" event, so the trail shows that this grant was never issued.
        raise AuditUnavailable(
            f"audit record for {event.request_namespace}/{event.request_name} was not accepted, "
            f"so the grant was not issued: {'; '.join(reasons)}"
        )

    async def record(self, event: AuditEvent) -> AuditRecord:
        """Records an event without waiting on any sink (used for revocations and the like).

        The end of a grant also schedules its `activity-summary` record, when activity is configured.
        """
        record, _ = await self._append(event)
        grant = self._activity.wants(event) if self._activity is not None else None
        if grant is not None:
            task = asyncio.create_task(self._summarize_activity(event, grant), name="audit-activity")
            self._activity_tasks.add(task)
            task.add_done_callback(self._activity_tasks.discard)
        return record

    async def _summarize_activity(self, ended: AuditEvent, grant: GrantIdentity) -> None:
        assert self._activity is not None
        reader = self._activity
        await asyncio.sleep(reader.delay_seconds)
        try:
            summary = await asyncio.to_thread(reader.summary, ended, grant, now=self._clock())
        except Exception:  # a bug in reading must not take the trail down; the log says which grant
            name = f"{ended.request_namespace}/{ended.request_name}"
            logger.exception("activity of %s could not be summarised", name)
            return
        await self.record(summary)
        if self.on_activity_summary is not None:
            self.on_activity_summary(summary)

    async def checkpoint(self, *, reason: CheckpointReason = "manual") -> Checkpoint | None:
        """Writes a signed checkpoint of the current head now (None when no key is configured).

        Each names the previous one and the cadence, so a verifier can tell how recent the newest
        checkpoint should be and notice a trail cut short (see `chain.verify_chain`).
        """
        if self._signer is None:
            return None
        self._require_started()
        async with self._lock:
            checkpoint = self._signer.sign(
                instance=self.instance,
                head=self._head,
                time=self._clock(),
                interval_seconds=self._checkpoint_interval,
                previous=self._last_checkpoint,
                reason=reason,
            )
            self._last_checkpoint = CheckpointRef.of(checkpoint)
            await self._enqueue(Entry.of(checkpoint))
            try:
                await asyncio.to_thread(self._spool.write_checkpoint, self._last_checkpoint)
            except OSError as exc:  # the next run's first checkpoint then names no predecessor
                logger.error("audit spool: last checkpoint not saved: %s", exc)
        return checkpoint

    async def close(self) -> None:
        """Signs a last checkpoint, delivers what can be delivered in time, keeps the rest spooled."""
        if not self._started:
            return
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
        if self._activity_tasks:
            # Not waited for: reading a remote log could hold the shutdown up for minutes.
            unwritten = len(self._activity_tasks)
            logger.warning("audit trail closed with %d activity summaries not written", unwritten)
            for task in list(self._activity_tasks):
                task.cancel()
            await asyncio.gather(*self._activity_tasks, return_exceptions=True)
        await self.checkpoint(reason="shutdown")
        await self._drain()
        await self._all_within([queue.wait_empty() for queue in self._queues], seconds=self._close_timeout)
        for queue in self._queues:
            if queue.task is not None:
                queue.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.task
            with contextlib.suppress(Exception):
                await queue.sink.close()
        try:
            await asyncio.to_thread(self._spool.save_cursors)
        except OSError as exc:  # its entries are then delivered again after a restart, as repeats
            logger.error("audit spool: sinks' progress not saved: %s", exc)
        try:
            await asyncio.to_thread(self._spool.write_head, self._head)
        except OSError as exc:
            logger.error("audit chain head (seq %d) could not be saved: %s", self._head.seq, exc)
        if self.depth():
            logger.warning("audit trail closed with %d entries left in the spool", self.depth())
        self._started = False

    @staticmethod
    async def _all_within(waits: list[Coroutine[Any, Any, None]], *, seconds: float) -> bool:
        """Whether every wait finished within `seconds`; none is left running either way."""
        tasks = [asyncio.create_task(wait) for wait in waits]
        try:
            _, not_done = await asyncio.wait(tasks, timeout=seconds)
        finally:
            for task in tasks:
                task.cancel()
        return not not_done

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the audit trail is not started")

    async def _append(self, event: AuditEvent) -> tuple[AuditRecord, str | None]:
        self._require_started()
        # Linked and placed in the batch without an await in between: sequence numbers are handed
        # out in the order the entries are spooled and delivered.
        record = link(event, head=self._head, instance=self.instance)
        self._head = ChainHead(seq=record.seq, hash=record.hash)
        spool_error = await self._enqueue(Entry.of(record))
        return record, spool_error

    async def _enqueue(self, entry: Entry) -> str | None:
        """Adds the entry to the next batch and waits until that batch is spooled and queued for
        every sink; returns why the spool failed, if it did.

        On a spool failure the entry is still queued in memory: its sequence number is taken, and
        delivering it beats leaving a gap in the chain.
        """
        if self._writer is None or self._writer.done():  # closing: nothing gathers any more
            async with self._alone:  # one at a time, so the spool and the sinks get them in order
                alone = _Batch()
                alone.entries.append(entry)
                await self._write_batch(alone)
                return alone.spooled.result()
        if self._gathering is None:
            self._gathering = _Batch()
        batch = self._gathering
        batch.entries.append(entry)
        self._ready.set()
        # Shielded: a caller cancelled while waiting must not cancel the answer the others wait for
        # (its entry is spooled and delivered all the same).
        return await asyncio.shield(batch.spooled)

    async def _write_batches(self) -> None:
        """The one writer: spools whatever has gathered, one batch at a time, in order, until
        `_drain` asks it to stop and nothing is left."""
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                batch, self._gathering = self._gathering, None
                if batch is not None:
                    await self._write_batch(batch)
                if self._stopping and self._gathering is None:
                    return
        finally:
            # Only when the writer itself failed or was cancelled: nobody may wait for it forever.
            left, self._gathering = self._gathering, None
            if left is not None:
                left.spooled.set_exception(AuditUnavailable("the audit spool writer stopped"))

    async def _write_batch(self, batch: _Batch) -> None:
        spool_error = None
        try:
            try:
                await asyncio.to_thread(self._spool.put_batch, batch.entries)
            except OSError as exc:
                spool_error = exc.strerror or _describe(exc)
                logger.error(
                    "audit spool %s cannot be written (%s): entries %d to %d are held in memory only",
                    self._spool.directory,
                    spool_error,
                    batch.entries[0].seq,
                    batch.entries[-1].seq,
                )
            for queue in self._queues:
                await queue.add(batch.entries)
        except BaseException as exc:
            # Never leave a caller waiting: an entry whose fate is unknown is not durable.
            batch.spooled.set_exception(AuditUnavailable(f"the audit spool writer stopped: {_describe(exc)}"))
            raise
        batch.spooled.set_result(spool_error)

    async def _drain(self) -> None:
        """Lets the writer finish every gathered batch, then stops it."""
        if self._writer is None:
            return
        self._stopping = True
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        self._writer = None

    async def _deliver(self, queue: _SinkQueue) -> None:
        delay = self._retry_initial
        while True:
            async with queue.changed:
                await queue.changed.wait_for(lambda: bool(queue.pending))
                entries = list(queue.pending.values())[: self._batch_size]
            try:
                await queue.sink.write(entries)
            except Exception as exc:  # every failure is retried; the reason is kept for status
                queue.last_error = _describe(exc)
                if self.on_delivery_failure is not None:
                    self.on_delivery_failure(queue.sink.name)
                # Jitter keeps a fleet of operators from retrying in lockstep (not security-relevant).
                pause = delay * random.uniform(0.5, 1.0)  # noqa: S311
                logger.warning(
                    "audit sink %s: %d entries not delivered (%s); retrying in %.1fs",
                    queue.sink.name,
                    len(entries),
                    queue.last_error,
                    pause,
                )
                await asyncio.sleep(pause)
                delay = min(delay * 2, self._retry_max)
                continue
            delay = self._retry_initial
            queue.last_error = None
            try:
                await asyncio.to_thread(self._spool.delivered, queue.sink.name, entries[-1].key)
            except OSError as exc:
                # Delivered already: at worst they are delivered again after a restart, as repeats.
                logger.error(
                    "audit spool %s: progress of %s not saved: %s",
                    self._spool.directory,
                    queue.sink.name,
                    exc,
                )
            async with queue.changed:
                for entry in entries:
                    queue.pending.pop(entry.key, None)
                queue.changed.notify_all()

    async def _checkpoints(self) -> None:
        # A heartbeat even when nothing happened: its absence is what shows a missing tail.
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            await self.checkpoint(reason="heartbeat")
