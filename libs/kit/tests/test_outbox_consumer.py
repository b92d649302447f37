"""Outbox → relay → broker → ConsumerRunner, end to end on a real broker and a real database.

Events are staged in the caller's transaction, the relay publishes them, a consumer group applies
them once (inbox), retries what fails, and dead-letters what cannot be applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.broker import EmbeddedBroker, ensure_topics
from crm_kit.bus import Bus
from crm_kit.consumer import ConsumerRunner, PermanentError, Subscription, dlq_headers
from crm_kit.db import Database, kit_metadata, outbox_table
from crm_kit.events import CloudEvent, Contracts, ContractViolation, load_contracts, new_event
from crm_kit.observability import service_metrics
from crm_kit.outbox import OutboxRelay, stage
from crm_kit.settings import KafkaSettings, ServiceSettings, find_contracts_dir
from crm_kit.testing import eventually, publish, read_topic

SERVICE = "kit-test"
METRICS = "crm_kit_test"
CREATED = "customer.profile.created.v1"
UPDATED = "customer.profile.updated.v1"
TOPIC = "customer.profile"
DLQ = "customer.profile.dlq"
MAX_ATTEMPTS = 3

test_metadata = MetaData()
applied = Table(
    "applied",
    test_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),  # not unique on purpose: a second apply would show
    Column("customer_id", String(64), nullable=False),
)


def profile(customer_id: str, subject: str | None = None, **extra: Any) -> CloudEvent:
    data = {
        "customer_id": customer_id,
        "name": "张伟",
        "customer_type": "individual",
        "region": "BJ",
        "status": "active",
        "created_at": "2026-11-20T09:30:01+08:00",
    }
    return new_event(CREATED, source=SERVICE, subject=subject or customer_id, data=data | extra)


class Handler:
    """Writes one `applied` row per call, then fails as the customer id asks (the write must roll back)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        self.calls[event.id] += 1
        customer_id = event.data["customer_id"]
        await session.execute(insert(applied).values(event_id=event.id, customer_id=customer_id))
        if customer_id.startswith("FLAKY") and self.calls[event.id] == 1:
            raise ConnectionError("lost the database for a moment")
        if customer_id.startswith("BROKEN"):
            raise RuntimeError("this handler always fails")
        if customer_id.startswith("PERM"):
            raise PermanentError("the customer cannot be applied")


class RecordingRunner(ConsumerRunner):
    """A real runner that also remembers which records it was handed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, int]] = []

    async def process_batch(self, records: list[Any]) -> None:
        self.seen.extend((r.partition, r.offset) for r in records)
        await super().process_batch(records)


@dataclass
class Bench:
    db: Database
    bus: Bus
    contracts: Contracts
    settings: ServiceSettings
    handler: Handler
    group: str = "kit-test-group"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    relays: list[OutboxRelay] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka.bootstrap

    def relay(self, **kwargs: Any) -> OutboxRelay:
        options = {"batch_size": 100, "poll_seconds": 0.1} | kwargs
        relay = OutboxRelay(self.db, self.bus, service_metrics(SERVICE), **options)
        self.relays.append(relay)
        self.tasks.append(asyncio.create_task(relay.run()))
        return relay

    async def runner(self, cls: type[ConsumerRunner] = ConsumerRunner) -> tuple[ConsumerRunner, asyncio.Task[None]]:
        runner = cls(
            Subscription(self.group, {CREATED: self.handler}),
            db=self.db,
            bus=self.bus,
            contracts=self.contracts,
            settings=self.settings,
            metrics=service_metrics(SERVICE),
        )
        task = asyncio.create_task(runner.run())
        self.tasks.append(task)
        await asyncio.wait_for(runner.assigned.wait(), 20)
        return runner, task

    async def stage(self, *events: CloudEvent) -> None:
        async with self.db.sessions.begin() as session:
            await stage(session, self.contracts, events)

    async def applied(self) -> list[tuple[str, str]]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(applied.c.event_id, applied.c.customer_id).order_by(applied.c.seq))
            return [tuple(r) for r in rows]

    async def applied_ids(self, expect: int) -> list[str] | None:
        ids = [event_id for event_id, _ in await self.applied()]
        return ids if len(ids) >= expect else None

    async def pending(self) -> list[str]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(outbox_table.c.id).where(outbox_table.c.sent_at.is_(None)).order_by(outbox_table.c.seq)
            )
            return list(rows)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"{METRICS}_{name}", labels) or 0.0


@pytest_asyncio.fixture
async def bench(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Bench]:
    url = await database_url("kit")
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
        await conn.run_sync(test_metadata.create_all)
    contracts = load_contracts(find_contracts_dir())
    await ensure_topics(kafka.bootstrap, contracts)
    settings = ServiceSettings(
        database_url=url,
        kafka=kafka,
        consumer_max_attempts=MAX_ATTEMPTS,
        consumer_backoff_seconds=0.01,
        log_json=False,
    )
    b = Bench(db=db, bus=Bus(kafka, client_id=SERVICE), contracts=contracts, settings=settings, handler=Handler())
    try:
        yield b
    finally:
        for t in b.tasks:
            await stop(t)
        for r in b.relays:
            r.detach()
        await b.bus.close()
        await db.dispose()


async def test_staged_events_are_published_in_order_keyed_by_customer_and_applied(bench: Bench):
    bench.relay()
    await bench.runner()
    first = [profile("C1", status=s) for s in ("active", "suspended", "active", "inactive")]
    other = profile("C2")
    await bench.stage(*first, other)

    ids = await eventually(lambda: bench.applied_ids(5))
    assert sorted(ids) == sorted(e.id for e in [*first, other])
    assert [i for i in ids if i != other.id] == [e.id for e in first], "one customer's events keep their order"
    await eventually(lambda: _none_pending(bench))

    records = await read_topic(bench.bootstrap, TOPIC, expect=5)
    assert len(records) == 5
    by_id = {json.loads(r.value)["id"]: r for r in records}
    for e in [*first, other]:
        assert by_id[e.id].key == e.subject.encode()
        assert json.loads(by_id[e.id].value) == json.loads(e.to_json())
    assert len({by_id[e.id].partition for e in first}) == 1
    assert [by_id[e.id].offset for e in first] == sorted(by_id[e.id].offset for e in first)
    # The relay reads its backlog at most once a second: the gauge comes down at its next reading.
    await eventually(lambda: _gauge_is("outbox_backlog", 0))


async def test_a_large_backlog_goes_out_in_packed_batches_keeping_each_customers_order(bench: Bench):
    """Many record batches for one customer (16 KiB each), in rounds of 5,000."""
    bench.relay(batch_size=5000)
    staged = [profile("C1" if n % 5 else "C2", name=f"客户{n:04d}" + "某" * 90) for n in range(6000)]
    for start in range(0, len(staged), 2000):
        await bench.stage(*staged[start : start + 2000])
    await eventually(lambda: _none_pending(bench), timeout=60)

    records = await read_topic(bench.bootstrap, TOPIC, expect=len(staged), timeout=60)
    assert len(records) == len(staged)
    partitions = sorted({r.partition for r in records} | set(range(bench.contracts.topics[TOPIC].partitions)))
    for customer in ("C1", "C2"):
        mine = [r for r in records if r.key == customer.encode()]
        assert {r.partition for r in mine} == {DefaultPartitioner()(customer.encode(), partitions, partitions)}
        in_offset_order = [json.loads(r.value)["id"] for r in sorted(mine, key=lambda r: r.offset)]
        assert in_offset_order == [e.id for e in staged if e.subject == customer]
    assert metric("outbox_published_total", topic=TOPIC) >= len(staged)


async def test_writers_committing_while_the_relay_publishes_never_make_it_send_a_row_twice(bench: Bench):
    """On SQLite a relay marking rows in the transaction it read them in is refused once a writer has committed
    in between, and would send the round again; every event must reach the topic once."""
    bench.relay(batch_size=50, poll_seconds=0.01)
    staged: list[CloudEvent] = []
    for round_ in range(40):
        events = [profile(f"C{round_}-{n}") for n in range(25)]
        await bench.stage(*events)
        staged.extend(events)
        await asyncio.sleep(0.005)
    await eventually(lambda: _none_pending(bench), timeout=60)

    records = await read_topic(bench.bootstrap, TOPIC, expect=len(staged) + 1, timeout=3)
    ids = [json.loads(r.value)["id"] for r in records]
    assert sorted(ids) == sorted(e.id for e in staged), "each event once, none twice"


async def test_a_writer_holding_the_database_does_not_hold_up_publishing(bench: Bench):
    """On SQLite one writer at a time: a relay that waited to mark a round sent before publishing the next would
    stall behind every queued writer (a feed's pushes) while the backlog grows. It publishes on, marks later."""
    relay = OutboxRelay(bench.db, bench.bus, service_metrics(SERVICE), batch_size=100)
    bench.relays.append(relay)
    staged = [profile(f"C{n}") for n in range(5)]
    await bench.stage(*staged)
    async with bench.db.sessions() as writer:
        await writer.execute(insert(applied).values(event_id="held", customer_id="C0"))  # holds the write lock
        assert await asyncio.wait_for(relay.publish_pending(), 10) == 5
        assert await asyncio.wait_for(relay.publish_pending(), 10) == 0, "a published row is not sent again"
        records = await read_topic(bench.bootstrap, TOPIC, expect=5)
        assert sorted(json.loads(r.value)["id"] for r in records) == sorted(e.id for e in staged)
        await writer.rollback()
    await asyncio.wait_for(relay.flush_marks(), 10)
    assert await bench.pending() == []


async def test_crm_relay_publishes_a_service_outbox_as_a_process_of_its_own(bench: Bench):
    """`crm relay` beside a service whose own relay is off: rows staged before it starts and while it runs (by
    another process, on the same database) go out once each, are marked sent, and SIGTERM stops it cleanly."""
    before = [profile(f"C{n}") for n in range(3)]
    await bench.stage(*before)
    env = {**os.environ, "CRM_KAFKA_BOOTSTRAP": bench.bootstrap, "CRM_LOG_LEVEL": "WARNING"}
    command = ("relay", "--service", "kit-test", "--database-url", bench.db.url, "--poll-seconds", "0.05")
    relay = await asyncio.create_subprocess_exec(sys.executable, "-m", "crm_kit.cli", *command, env=env)
    try:
        during = [profile(f"D{n}") for n in range(3)]
        await bench.stage(*during)
        await eventually(lambda: _none_pending(bench), timeout=30)
        records = await read_topic(bench.bootstrap, TOPIC, expect=7, timeout=3)
        assert sorted(json.loads(r.value)["id"] for r in records) == sorted(e.id for e in [*before, *during])
    finally:
        relay.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(relay.wait(), 15) == 0


async def _gauge_is(name: str, value: float) -> bool:
    return metric(name) == value


async def _none_pending(bench: Bench) -> bool:
    return not await bench.pending()


async def test_the_relay_wakes_on_commit_instead_of_waiting_for_its_poll(bench: Bench):
    bench.relay(poll_seconds=60)
    await bench.runner()
    await asyncio.sleep(0.5)  # the relay has found nothing and is asleep for a minute
    event = profile("C1")
    await bench.stage(event)
    assert await eventually(lambda: bench.applied_ids(1), timeout=5) == [event.id]


async def test_a_rolled_back_transaction_publishes_nothing(bench: Bench):
    bench.relay()
    await bench.runner()
    lost = profile("C-LOST")
    with pytest.raises(RuntimeError):
        async with bench.db.sessions.begin() as session:
            await stage(session, bench.contracts, [lost])
            raise RuntimeError("the state change failed")
    invalid = profile("C-BAD", status="gone")
    with pytest.raises(ContractViolation):
        await bench.stage(profile("C-OK-BUT-WITH-A-BAD-ONE"), invalid)
    marker = profile("C-MARKER")
    await bench.stage(marker)

    assert await eventually(lambda: bench.applied_ids(1)) == [marker.id]
    records = await read_topic(bench.bootstrap, TOPIC, expect=1)
    assert [json.loads(r.value)["id"] for r in records] == [marker.id]
    async with bench.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(outbox_table)) == 1


async def test_the_same_event_delivered_twice_is_applied_once(bench: Bench):
    await bench.runner()
    event = profile("C1")
    duplicates_before = metric("events_consumed_total", topic=TOPIC, type=CREATED, outcome="duplicate")
    raw = event.to_json().encode()
    await publish(bench.bootstrap, TOPIC, [("C1", raw), ("C1", raw)])
    marker = profile("C1")
    await publish(bench.bootstrap, TOPIC, [("C1", marker.to_json().encode())])

    assert await eventually(lambda: bench.applied_ids(2)) == [event.id, marker.id]
    await asyncio.sleep(0.3)
    assert [i for i, _ in await bench.applied()] == [event.id, marker.id]
    assert bench.handler.calls[event.id] == 1
    assert metric("events_consumed_total", topic=TOPIC, type=CREATED, outcome="duplicate") == duplicates_before + 1


async def test_a_handler_that_fails_once_is_retried_and_applied_once(bench: Bench):
    bench.relay()
    await bench.runner()
    flaky, perm = profile("FLAKY-1"), profile("PERM-1")
    await bench.stage(flaky, perm)

    assert await eventually(lambda: bench.applied_ids(1)) == [flaky.id]
    assert bench.handler.calls[flaky.id] == 2
    dead = await read_topic(bench.bootstrap, DLQ, expect=1)
    assert [json.loads(r.value)["id"] for r in dead] == [perm.id], "the retried event is not dead-lettered"
    assert [i for i, _ in await bench.applied()] == [flaky.id], "the failed attempt's writes were rolled back"


async def test_a_handler_that_always_fails_goes_to_the_dlq_after_max_attempts(bench: Bench):
    bench.relay()
    runner, _ = await bench.runner()
    broken, after = profile("BROKEN-1"), profile("C-AFTER", subject="BROKEN-1")  # same key: after it in order
    await bench.stage(broken, after)

    assert await eventually(lambda: bench.applied_ids(1)) == [after.id], "the consumer moved on"
    assert bench.handler.calls[broken.id] == MAX_ATTEMPTS
    [dead] = await read_topic(bench.bootstrap, DLQ, expect=1)
    [original] = [r for r in await read_topic(bench.bootstrap, TOPIC, expect=2) if r.value == dead.value]
    assert dead.key == b"BROKEN-1"
    headers = dlq_headers(dead)
    assert headers["dlq.reason"] == "retries-exhausted"
    assert "RuntimeError: this handler always fails" in headers["dlq.error"]
    assert headers["dlq.topic"] == TOPIC
    assert headers["dlq.partition"] == str(original.partition)
    assert headers["dlq.offset"] == str(original.offset)
    assert headers["dlq.consumer"] == runner.sub.group


async def test_a_permanent_error_goes_to_the_dlq_at_once(bench: Bench):
    bench.relay()
    await bench.runner()
    perm, after = profile("PERM-1"), profile("C-AFTER", subject="PERM-1")
    await bench.stage(perm, after)

    assert await eventually(lambda: bench.applied_ids(1)) == [after.id]
    [dead] = await read_topic(bench.bootstrap, DLQ, expect=1)
    assert json.loads(dead.value)["id"] == perm.id
    assert bench.handler.calls[perm.id] == 1, "a permanent error is not retried"
    headers = dlq_headers(dead)
    assert headers["dlq.reason"] == "permanent"
    assert "PermanentError: the customer cannot be applied" in headers["dlq.error"]


async def test_a_record_breaking_its_contract_goes_to_the_dlq_and_the_next_is_applied(bench: Bench):
    await bench.runner()
    bad = json.loads(profile("C1").to_json())
    bad["data"]["region"] = "Beijing"
    not_handled = new_event(
        UPDATED,
        source=SERVICE,
        subject="C1",
        data={
            "customer_id": "C1",
            "status": "active",
            "active_lines": 1,
            "total_lines": 1,
            "updated_at": "2026-11-20T09:30:01+08:00",
        },
    )
    good = profile("C1")
    await publish(
        bench.bootstrap,
        TOPIC,
        [
            ("C1", json.dumps(bad).encode()),
            ("C1", b"\x00 not an event at all"),
            ("C1", not_handled.to_json().encode()),
            ("C1", good.to_json().encode()),
        ],
    )

    assert await eventually(lambda: bench.applied_ids(1)) == [good.id]
    dead = await read_topic(bench.bootstrap, DLQ, expect=2)
    assert [r.value for r in dead] == [json.dumps(bad).encode(), b"\x00 not an event at all"]
    first, second = (dlq_headers(r) for r in dead)
    assert first["dlq.reason"] == second["dlq.reason"] == "contract"
    assert first["dlq.error"].startswith("region: ")
    assert [first["dlq.offset"], second["dlq.offset"]] == ["0", "1"]
    assert not bench.handler.calls.keys() - {good.id}, "an event type nobody handles is ignored, not applied"


async def test_offsets_are_committed_so_a_new_runner_in_the_group_does_not_reprocess(bench: Bench):
    bench.relay()
    _, task = await bench.runner()
    events = [profile("C1"), profile("C2"), profile("C3")]
    await bench.stage(*events)
    await eventually(lambda: bench.applied_ids(3))
    records = await read_topic(bench.bootstrap, TOPIC, expect=3)
    ends = {
        TopicPartition(r.topic, r.partition): max(o.offset for o in records if o.partition == r.partition) + 1
        for r in records
    }

    async def committed_to_the_end() -> bool:
        return await _committed(bench.bootstrap, bench.group, list(ends)) == ends

    await eventually(committed_to_the_end)
    await stop(task)

    runner, _ = await bench.runner(RecordingRunner)
    marker = profile("C1")
    await bench.stage(marker)
    await eventually(lambda: bench.applied_ids(4))
    await asyncio.sleep(0.3)
    assert len(runner.seen) == 1, f"the new runner was handed old records again: {runner.seen}"
    assert sorted(i for i, _ in await bench.applied()) == sorted([*(e.id for e in events), marker.id])


async def test_the_lag_gauge_covers_every_assigned_partition_not_only_those_with_records(bench: Bench):
    """A partition that never had a record must still read as caught up only once its end is known: a missing
    sample would sum to zero lag for a consumer that has not looked yet."""
    service_metrics(SERVICE).consumer_lag.clear()
    bench.relay()
    await bench.runner()
    await bench.stage(profile("C1"))
    await eventually(lambda: bench.applied_ids(1))
    partitions = await _partitions(bench.bootstrap, TOPIC)
    assert len(partitions) > 1

    async def every_partition_reported() -> set[str] | None:
        reported = {
            s.labels["partition"]
            for family in REGISTRY.collect()
            if family.name == f"{METRICS}_consumer_lag"
            for s in family.samples
            if s.labels["topic"] == TOPIC and s.value == 0
        }
        return reported if reported == {str(p) for p in partitions} else None

    await eventually(every_partition_reported)


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata
        return consumer.partitions_for_topic(topic) or set()
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def test_with_the_broker_down_the_relay_keeps_rows_and_publishes_them_when_it_is_back(
    bench: Bench, broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
):
    bench.bus = Bus(bench.settings.kafka.model_copy(update={"request_timeout_ms": 1000}), client_id=SERVICE)
    bench.relay()
    before = profile("C1")
    await bench.stage(before)
    await eventually(lambda: _none_pending(bench))

    caplog.set_level(logging.WARNING, logger="crm_kit.outbox")
    assert broker.process is not None
    broker.process.kill()  # a crash, not a polite shutdown
    broker.stop()
    during = [profile("C1", status="suspended"), profile("C2"), profile("C1", status="active")]
    await bench.stage(*during)
    # The relay keeps trying, backing off; three failures leave it asleep for 1.6s.
    await eventually(lambda: _failures(caplog, 3), timeout=20)
    assert await bench.pending() == [e.id for e in during], "nothing is marked sent while the broker is down"

    # The embedded broker keeps its log in memory: the one that comes back on the same port is empty.
    with EmbeddedBroker(port=broker.port) as second:
        await ensure_topics(second.bootstrap, bench.contracts)
        await eventually(lambda: _none_pending(bench), timeout=20)
        records = await read_topic(second.bootstrap, TOPIC, expect=3)
        ids = [json.loads(r.value)["id"] for r in records]
        assert sorted(ids) == sorted(e.id for e in during), "every pending row is published, once"
        c1 = [json.loads(r.value)["id"] for r in records if r.key == b"C1"]
        assert c1 == [during[0].id, during[2].id], "in order"
        for t in bench.tasks:  # stop the relay while its broker is still up
            await stop(t)
        bench.tasks.clear()


async def _failures(caplog: pytest.LogCaptureFixture, n: int) -> bool:
    return sum("outbox relay failed" in r.getMessage() for r in caplog.records) >= n


async def test_two_relays_on_postgresql_publish_each_row_once(bench: Bench):
    if bench.db.dialect != "postgresql":
        pytest.skip("SKIP LOCKED sharing is a PostgreSQL feature; SQLite runs one relay")
    events = [profile(f"C{i}") for i in range(200)]
    await bench.stage(*events)
    bench.relay(batch_size=10)
    bench.relay(batch_size=10)
    await eventually(lambda: _none_pending(bench), timeout=20)
    records = await read_topic(bench.bootstrap, TOPIC, expect=200)
    ids = [json.loads(r.value)["id"] for r in records]
    assert sorted(ids) == sorted(e.id for e in events)


class WatchedRelay(OutboxRelay):
    """A real relay that says when a round has begun."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_round = asyncio.Event()

    async def publish_pending(self) -> int:
        self.in_round.set()
        return await super().publish_pending()


async def test_a_relay_stopped_mid_round_finishes_it_so_its_successor_sends_nothing_twice(bench: Bench):
    events = [profile(f"C{i}") for i in range(600)]
    await bench.stage(*events)
    first = WatchedRelay(bench.db, bench.bus, service_metrics(SERVICE), batch_size=200, poll_seconds=0.1)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.in_round.wait(), 10)
    await first.stop(task)  # a planned shutdown arrives while the round is with the broker
    await first.close()
    assert task.done() and not task.cancelled(), "the round ran to its end instead of being cancelled"
    assert len(await bench.pending()) < len(events), "the round in flight was published and marked sent"

    bench.relay(batch_size=200)  # the next process
    await eventually(lambda: _none_pending(bench), timeout=20)
    records = await read_topic(bench.bootstrap, TOPIC, expect=len(events))
    ids = Counter(json.loads(r.value)["id"] for r in records)
    assert set(ids) == {e.id for e in events}
    assert set(ids.values()) == {1}, "no event is on the topic twice"
