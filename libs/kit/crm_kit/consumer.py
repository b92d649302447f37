"""Consumer runner: consumer group, inbox de-duplication, bounded retries, dead-letter topic.

Each record is handled in its own DB transaction together with its inbox row; offsets are
committed once per batch, after the transactions. A record that breaks its contract, or keeps
failing after the retries, goes to `<topic>.dlq` with the error and the runner moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from asgi_correlation_id import correlation_id
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from crm_kit.bus import Bus
from crm_kit.db import Database, inbox_table, utcnow
from crm_kit.events import CloudEvent, Contracts, ContractViolation, parse_event
from crm_kit.observability import ServiceMetrics
from crm_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


class PermanentError(Exception):
    """A handler's way of saying: retrying will not help, dead-letter this record now."""


@dataclass(frozen=True)
class Subscription:
    """What a service consumes: a consumer group, its topics and one handler per event type."""

    group: str
    handlers: Mapping[str, Handler]

    @property
    def topics(self) -> list[str]:
        return sorted({".".join(t.split(".")[:2]) for t in self.handlers})


class _BatchFailed(Exception):
    """A batch transaction failed; `event_id` is the event whose handler raised (None: the commit did)."""

    def __init__(self, event_id: str | None) -> None:
        super().__init__(event_id)
        self.event_id = event_id


class _Joined(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the runner joined the moment the group hands it its partitions (none, when the group has more members
    than the topics have partitions: it is a member all the same), not after its first poll returns."""

    def __init__(self, joined: asyncio.Event) -> None:
        self.joined = joined

    async def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to do: offsets are committed after each batch's transaction, never held across a rebalance."""

    async def on_partitions_assigned(self, assigned: object) -> None:
        self.joined.set()


class ConsumerRunner:
    def __init__(
        self,
        subscription: Subscription,
        *,
        db: Database,
        bus: Bus,
        contracts: Contracts,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
    ) -> None:
        self.sub = subscription
        self.db = db
        self.bus = bus
        self.contracts = contracts
        self.settings = settings
        self.metrics = metrics
        self.assigned = asyncio.Event()

    def _consumer(self) -> AIOKafkaConsumer:
        k = self.settings.kafka
        return AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap,
            group_id=self.sub.group,
            client_id=self.sub.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=k.session_timeout_ms,
            heartbeat_interval_ms=k.heartbeat_interval_ms,
            rebalance_timeout_ms=k.rebalance_timeout_ms,
            request_timeout_ms=max(k.request_timeout_ms, k.session_timeout_ms + 1000),
            max_poll_records=self.settings.consumer_batch_size,
            fetch_max_wait_ms=k.fetch_max_wait_ms,
        )

    async def run(self) -> None:
        """Consume until cancelled; reconnects after broker failures (the inbox absorbs redelivery)."""
        failures = 0
        while True:
            consumer = self._consumer()
            consumer.subscribe(self.sub.topics, listener=_Joined(self.assigned))
            try:
                await consumer.start()
                failures = 0
                await self._loop(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if (task := asyncio.current_task()) is not None and task.cancelling():
                    # The cancel was swallowed below us (wait_for in 3.11, aiokafka): stop, don't retry.
                    raise asyncio.CancelledError from exc
                failures += 1
                delay = min(0.5 * 2**failures, 10.0)
                log.warning("consumer %s failed, restarting in %.1fs: %s", self.sub.group, delay, exc)
                await asyncio.sleep(delay)
            finally:
                self.assigned.clear()
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=self.settings.consumer_batch_size)
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                await self.process_batch(records)
                offsets[tp] = records[-1].offset + 1
            if offsets:
                await consumer.commit(offsets)
            await self._report_lag(consumer, offsets)

    async def _report_lag(self, consumer: AIOKafkaConsumer, consumed: dict[TopicPartition, int]) -> None:
        """Lag of every assigned partition, not only those in the batch: a partition that has not yet had a
        record must not read as caught up (no sample would sum to zero lag)."""
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:  # not fetched yet: the partition's end is unknown, so is its lag
                continue
            position = consumed.get(tp)
            if position is None:
                position = await consumer.position(tp)
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(end - position, 0))

    async def process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """One partition's batch in one transaction; if anything in it fails, record by record with retries."""
        admitted = [(r, e) for r in records if (e := await self._admit(r)) is not None]
        if not admitted:
            return
        try:
            outcomes = await self._apply_all([e for _, e in admitted])
        except _BatchFailed as failed:
            log.info("batch of %d failed (%s); applying one by one", len(admitted), failed.__cause__)
            for record, event in admitted:
                if event.id != failed.event_id:
                    await self._apply_one(record, event)
                elif isinstance(failed.__cause__, PermanentError):
                    await self._dead_letter_failure(record, event, failed.__cause__)
                elif self.settings.consumer_max_attempts > 1:  # its try in the batch counts as its first
                    await self._apply_one(record, event, attempts=self.settings.consumer_max_attempts - 1)
                else:
                    await self._dead_letter_failure(record, event, failed.__cause__ or failed)
            return
        for (record, event), outcome in zip(admitted, outcomes, strict=True):
            self.metrics.consumed.labels(record.topic, event.type, outcome).inc()

    async def _admit(self, record: ConsumerRecord[bytes, bytes]) -> CloudEvent | None:
        """The event, if this runner handles it and it keeps its contract; a broken one is dead-lettered."""
        try:
            event = parse_event(record.value or b"")
            if event.type not in self.sub.handlers:
                self.metrics.consumed.labels(record.topic, event.type, "ignored").inc()
                return None
            self.contracts.validate(event.type, event.data)
        except ContractViolation as exc:
            await self.dead_letter(record, "contract", str(exc))
            return None
        return event

    async def _apply_one(
        self, record: ConsumerRecord[bytes, bytes], event: CloudEvent, attempts: int | None = None
    ) -> str:
        token = correlation_id.set(event.correlationid or event.id)
        try:
            outcome = await self._apply_with_retries(event, attempts or self.settings.consumer_max_attempts)
        except Exception as exc:
            return await self._dead_letter_failure(record, event, exc)
        finally:
            correlation_id.reset(token)
        self.metrics.consumed.labels(record.topic, event.type, outcome).inc()
        return outcome

    async def _dead_letter_failure(
        self, record: ConsumerRecord[bytes, bytes], event: CloudEvent, exc: BaseException
    ) -> str:
        reason = "permanent" if isinstance(exc, PermanentError) else "retries-exhausted"
        log.error("event %s (%s) failed: %s", event.id, event.type, exc, exc_info=exc)
        await self.dead_letter(record, reason, f"{type(exc).__name__}: {exc}")
        return "dead-lettered"

    async def _apply_all(self, events: list[CloudEvent]) -> list[str]:
        """Every event of a batch and its inbox row in one transaction: one commit instead of one per event."""
        async with self.db.sessions.begin() as session:
            seen = set(
                await session.scalars(
                    select(inbox_table.c.event_id).where(
                        inbox_table.c.consumer == self.sub.group, inbox_table.c.event_id.in_([e.id for e in events])
                    )
                )
            )
            outcomes, inbox_rows = [], []
            for event in events:
                if event.id in seen:
                    outcomes.append("duplicate")
                    continue
                seen.add(event.id)
                token = correlation_id.set(event.correlationid or event.id)
                try:
                    await self.sub.handlers[event.type](session, event)
                except Exception as exc:
                    raise _BatchFailed(event.id) from exc
                finally:
                    correlation_id.reset(token)
                outcomes.append("applied")
                inbox_rows.append(
                    {"consumer": self.sub.group, "event_id": event.id, "type": event.type, "processed_at": utcnow()}
                )
            if inbox_rows:
                try:
                    await session.execute(insert(inbox_table), inbox_rows)
                except Exception as exc:
                    raise _BatchFailed(None) from exc
        return outcomes

    async def _apply_with_retries(self, event: CloudEvent, attempts: int) -> str:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.settings.consumer_backoff_seconds, max=5),
            retry=retry_if_not_exception_type(PermanentError),
            reraise=True,
        ):
            with attempt:
                return await self._apply(event)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apply(self, event: CloudEvent) -> str:
        async with self.db.sessions.begin() as session:
            seen = await session.scalar(
                select(inbox_table.c.event_id).where(
                    inbox_table.c.consumer == self.sub.group, inbox_table.c.event_id == event.id
                )
            )
            if seen:
                return "duplicate"
            await self.sub.handlers[event.type](session, event)
            await session.execute(
                insert(inbox_table).values(
                    consumer=self.sub.group, event_id=event.id, type=event.type, processed_at=utcnow()
                )
            )
        return "applied"

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str, error: str) -> None:
        """The original bytes go to `<topic>.dlq`, the error and origin in headers, so it can be replayed."""
        headers: list[tuple[str, bytes]] = [
            ("dlq.reason", reason.encode()),
            ("dlq.error", error[:2000].encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.consumer", self.sub.group.encode()),
            ("dlq.failed_at", utcnow().isoformat().encode()),
        ]
        producer = await self.bus.producer()
        await producer.send_and_wait(record.topic + ".dlq", record.value, key=record.key, headers=headers)
        self.metrics.dlq.labels(record.topic, reason).inc()
        log.warning("dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, error)


def dlq_headers(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in (record.headers or [])}
