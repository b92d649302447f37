"""Dead-letter replay: after a fix, put what a consumer gave up on back on its topic.

Records go back with their original key and bytes; the consumers' inbox skips any event that
was applied in the meantime, so a replay is safe to repeat.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_kit.events import DLQ_SUFFIX
from crm_kit.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass
class Replayed:
    topic: str
    count: int


async def replay_dead_letters(
    kafka: KafkaSettings, topic: str, *, group: str | None = None, idle_seconds: float = 2.0
) -> Replayed:
    """Move every record not yet replayed from `<topic>.dlq` back to `topic`.

    The replayer is a consumer group of its own (`dlq-replay.<topic>` by default) that commits what it
    moved, so a second run replays only what was dead-lettered since.
    """
    dlq = topic + DLQ_SUFFIX
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=kafka.bootstrap,
        group_id=group or f"dlq-replay.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        rebalance_timeout_ms=kafka.rebalance_timeout_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    count = 0
    try:
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < idle_seconds:
            batch = await consumer.getmany(timeout_ms=300)
            if not batch:
                continue
            quiet_since = loop.time()
            for tp, records in batch.items():
                for record in records:
                    headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("dlq.")]
                    headers.append(("dlq.replayed_from", f"{dlq}:{record.partition}:{record.offset}".encode()))
                    await producer.send_and_wait(topic, record.value, key=record.key, headers=headers)
                    count += 1
                await consumer.commit({tp: records[-1].offset + 1})
    finally:
        await producer.stop()
        await consumer.stop()
    log.info("replayed %d records from %s", count, dlq)
    return Replayed(topic, count)
