"""Transactional outbox: the state change and its event commit together; a relay publishes them.

Only the relay talks to Kafka. The table follows Debezium's outbox shape, so a CDC relay can
replace the polling one in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pydantic_core import to_json
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.bus import Bus
from crm_kit.db import Database, insert_many, outbox_table, utcnow
from crm_kit.events import CloudEvent, Contracts, ContractViolation, Violation, topic_of
from crm_kit.observability import ServiceMetrics

log = logging.getLogger(__name__)

STAGED = "crm_outbox_staged"


def outbox_row(event: CloudEvent) -> dict[str, Any]:
    return _row(event.id, event.type, event.subject or "", event.to_json(), utcnow())


def _row(event_id: str, event_type: str, subject: str, payload: str, created_at: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "aggregatetype": topic_of(event_type),
        "aggregateid": subject,
        "type": event_type,
        "payload": payload,
        "created_at": created_at,
    }


class PreparedEvent(NamedTuple):
    """An event already written as its CloudEvent JSON (`crm_kit.events.event_json`), data checked."""

    event_type: str
    subject: str
    event_id: str
    payload: str


async def stage_prepared(session: AsyncSession, contracts: Contracts, events: Sequence[PreparedEvent]) -> int:
    """`stage` for events made as JSON directly, the hot path of a feed: each type is checked to have a contract
    and a topic once, the rows go in as one statement."""
    topics = {event_type: topic_of(event_type) for event_type in {e.event_type for e in events}}
    for event_type, topic in topics.items():
        if not contracts.knows(event_type) or topic not in contracts.topics:
            raise ContractViolation(event_type, [Violation("type", f"no contract or topic for {event_type!r}")])
    if events:
        await insert_many(
            session,
            outbox_table,
            ("id", "aggregatetype", "aggregateid", "type", "payload"),
            [(e.event_id, topics[e.event_type], e.subject, e.event_type, e.payload) for e in events],
            same={"created_at": utcnow()},
        )
        session.info[STAGED] = True
    return len(events)


async def stage(session: AsyncSession, contracts: Contracts, events: Iterable[CloudEvent]) -> int:
    """Validate and add events to the outbox in the caller's transaction. Keyed by subject (customer id)."""
    rows = []
    for e in events:
        contracts.validate_event(e)
        rows.append(outbox_row(e))
    if rows:
        await session.execute(insert(outbox_table), rows)
        session.info[STAGED] = True
    return len(rows)


BULK_CHUNK = 5_000
"""Events per statement when staging in bulk."""


async def stage_many(
    session: AsyncSession,
    contracts: Contracts,
    template: CloudEvent,
    items: Sequence[tuple[str, dict[str, Any]]],
    *,
    chunk_size: int = BULK_CHUNK,
) -> int:
    """Stage one event per (subject, data) item: `template` with a fresh id, that subject and that data.

    For the hundreds of thousands of events of one kind a set-based change makes (a segment's members): building
    and validating a CloudEvent each would take longer than the change. The template is validated in full, and
    so is the first item of each chunk; the items of a chunk differ only in values the caller took from
    validated data (customer ids), so the rest are not checked again. `data` must be JSON-ready (strings, numbers,
    no datetimes). Each chunk is one `insert_many`.
    """
    contracts.validate_event(template)
    envelope = template.model_dump(mode="json", exclude_none=True)
    same = {"aggregatetype": template.topic, "type": template.type, "created_at": utcnow()}
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        contracts.validate(template.type, chunk[0][1])
        rows = []
        for subject, data in chunk:
            event_id = str(uuid.uuid4())
            payload = to_json({**envelope, "id": event_id, "subject": subject, "data": data}).decode()
            rows.append((event_id, subject, payload))
        await insert_many(session, outbox_table, ("id", "aggregateid", "payload"), rows, same=same)
    if items:
        session.info[STAGED] = True
    return len(items)


OBSERVE_SECONDS = 1.0


class OutboxRelay:
    """Publishes pending outbox rows in order (acks=all), then marks them sent.

    At-least-once: a crash between publish and mark re-sends; consumers de-duplicate by event id.
    On PostgreSQL rows are claimed with FOR UPDATE SKIP LOCKED so replicas can share the work.
    """

    def __init__(
        self, db: Database, bus: Bus, metrics: ServiceMetrics, *, batch_size: int = 5000, poll_seconds: float = 0.5
    ) -> None:
        self.db = db
        self.bus = bus
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._observed_at = -OBSERVE_SECONDS
        self._published_upto = 0
        self._unmarked: tuple[int, int] | None = None
        self._marking: asyncio.Task[None] | None = None
        self._stopping = False
        event.listen(db.session_class, "after_commit", self._after_commit)

    def _after_commit(self, session: Any) -> None:
        if session.info.pop(STAGED, False):
            self._wake.set()

    def detach(self) -> None:
        event.remove(self.db.session_class, "after_commit", self._after_commit)

    async def stop(self, task: asyncio.Task[None], timeout: float = 5.0) -> None:
        """Stop `task` (this relay's `run`) after the round it is in, cancelling it only if that takes longer than
        `timeout`. A round cancelled between the broker's ack and the row's mark is sent again by the next relay,
        so a planned stop lets it finish."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def close(self, timeout: float = 5.0) -> None:
        """After `run` has stopped: what was published, marked sent (within `timeout`), so that a restart does not
        send it again; then stop listening for commits."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush_marks(), timeout)
        self.detach()

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()  # before reading: a commit landing while we publish must wake the next round
            try:
                sent = await self.publish_pending()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the rows, try again later
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    # The cancel was swallowed below us (wait_for in 3.11, aiokafka): stop, don't retry.
                    raise asyncio.CancelledError from exc
                failures += 1
                delay = min(0.2 * 2**failures, 5.0)
                log.warning("outbox relay failed, retrying in %.1fs: %s", delay, exc)
                # A fresh producer next time: the broken one would hold the failed batch and send it
                # again behind our back, and make every retry wait out a full request timeout.
                await self.bus.reset()
                await asyncio.sleep(delay)
                continue
            if sent < self.batch_size and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were sent."""
        producer = await self.bus.producer()
        query = (
            select(outbox_table.c.seq, outbox_table.c.aggregatetype, outbox_table.c.aggregateid, outbox_table.c.payload)
            .where(outbox_table.c.sent_at.is_(None))
            .order_by(outbox_table.c.seq)
            .limit(self.batch_size)
        )
        if self.db.dialect == "postgresql":
            # Rows claimed for the whole round, so relay replicas share the work without sending a row twice.
            async with self.db.sessions.begin() as session:
                rows = (await session.execute(query.with_for_update(skip_locked=True))).all()
                if rows:
                    await _publish(producer, rows, self.metrics)
                    await session.execute(_mark_sent(rows))
        else:
            # SQLite (one relay per database): read past what this relay has published, publish, and mark the
            # rows sent in the background. Waiting for the mark's write would stall publishing behind every
            # writer queued on the database (a feed's pushes), while the backlog grows.
            async with self.db.sessions() as session:
                rows = (await session.execute(query.where(outbox_table.c.seq > self._published_upto))).all()
            if rows:
                await _publish(producer, rows, self.metrics)
                self._published_upto = rows[-1].seq
                self._unmarked = (rows[0].seq if self._unmarked is None else self._unmarked[0], rows[-1].seq)
            self._start_marking()
        await self._observe_backlog()
        return len(rows)

    def _start_marking(self) -> asyncio.Task[None] | None:
        """One mark runs at a time, for the whole range published and not yet marked."""
        if self._unmarked is not None and (self._marking is None or self._marking.done()):
            self._marking = asyncio.create_task(self._mark_published(), name="outbox-mark-sent")
        return self._marking

    async def _mark_published(self) -> None:
        """Mark the published range sent, again while publishing added to it. A failed mark keeps the range for
        the next round; rows never marked are sent again after a restart (at least once, as always)."""
        while self._unmarked is not None:
            first, last = self._unmarked
            try:
                async with self.db.sessions.begin() as session:
                    await session.execute(_mark_range_sent(first, last))
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("outbox relay could not mark rows %d-%d sent yet: %s", first, last, exc)
                return
            if self._unmarked == (first, last):
                self._unmarked = None
            else:
                self._unmarked = (last + 1, self._unmarked[1])

    async def flush_marks(self) -> None:
        """Wait until every published row is marked sent (at shutdown, and for tests that read the table)."""
        while (marking := self._start_marking()) is not None and self._unmarked is not None:
            await marking
            if self._unmarked is not None:
                await asyncio.sleep(0.1)

    async def _observe_backlog(self) -> None:
        """Backlog and age gauges, from index look-ups and at most once a second: a COUNT over a big backlog
        after every batch would slow the relay most exactly when it has most to do."""
        if time.monotonic() - self._observed_at < OBSERVE_SECONDS:
            return
        self._observed_at = time.monotonic()
        async with self.db.sessions() as session:
            count = await backlog_estimate(session)
            oldest = await session.scalar(
                select(outbox_table.c.created_at)
                .where(outbox_table.c.sent_at.is_(None))
                .order_by(outbox_table.c.seq)
                .limit(1)
            )
        self.metrics.outbox_backlog.set(count)
        if oldest is None:
            self.metrics.outbox_oldest_age.set(0)
        else:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=utcnow().tzinfo)
            self.metrics.outbox_oldest_age.set((utcnow() - oldest).total_seconds())


def _mark_sent(rows: Sequence[Any]) -> Any:
    return update(outbox_table).where(outbox_table.c.seq.in_([r.seq for r in rows])).values(sent_at=utcnow())


def _mark_range_sent(first: int, last: int) -> Any:
    """SQLite: the rows published are every unsent row from the first seq read to the last, so the range names
    them with two parameters instead of thousands. Nothing can join the range meanwhile: SQLite has one writer
    at a time, so rows commit in seq order, and a new row's seq is above every existing one."""
    return (
        update(outbox_table)
        .where(outbox_table.c.seq.between(first, last), outbox_table.c.sent_at.is_(None))
        .values(sent_at=utcnow())
    )


PARTITIONER = DefaultPartitioner()
"""Kafka's own key → partition mapping (murmur2), so a customer's events land where any Kafka client puts them."""


async def _publish(producer: AIOKafkaProducer, rows: list[Any], metrics: ServiceMetrics) -> None:
    """Send rows in seq order, packed into one record batch per partition (Kafka's unit of a write).

    Packing ourselves instead of one `send()` per event costs a quarter of the CPU per event. Order is kept where
    Kafka promises it: a key always maps to the same partition, and a partition's batches are sent in seq order.
    """
    partitions: dict[str, list[int]] = {}
    partition_of: dict[tuple[str, bytes], int] = {}
    open_batches: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    published: dict[str, int] = {}
    for r in rows:
        topic = r.aggregatetype
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        key = r.aggregateid.encode() or None
        value = r.payload.encode()
        if key is None:
            partition = random.choice(partitions[topic])
        elif (partition := partition_of.get((topic, key))) is None:
            # murmur2 in Python: once per customer a round, not once per event (a customer's events come together)
            partition = partition_of[(topic, key)] = PARTITIONER(key, partitions[topic], partitions[topic])
        batch = open_batches.get((topic, partition))
        if batch is None:
            batch = open_batches[(topic, partition)] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start the next
            batch.close()
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = open_batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"outbox row {r.seq} is larger than a whole record batch")
        published[topic] = published.get(topic, 0) + 1
    for (topic, partition), batch in open_batches.items():
        batch.close()
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)
    for topic, count in published.items():
        metrics.outbox_published.labels(topic).inc(count)


async def backlog_estimate(session: AsyncSession) -> int:
    """About how many events wait in the outbox, cheap however big it is: from the oldest unsent row to the newest.

    Two index look-ups (the oldest unsent seq from the partial index `ix_outbox_pending`, the newest seq from the
    primary key) instead of a COUNT over every pending row. Rows in between that are already sent (a relay replica
    ahead of a locked batch) or seq values never used (a rolled-back insert) make it an over-estimate, never under:
    the right side to err on for a bound on what a service accepts.
    """
    oldest = await session.scalar(select(func.min(outbox_table.c.seq)).where(outbox_table.c.sent_at.is_(None)))
    if oldest is None:
        return 0
    newest = await session.scalar(select(func.max(outbox_table.c.seq)))
    return int(newest - oldest + 1)
