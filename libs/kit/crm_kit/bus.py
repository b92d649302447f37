"""The producer side of the bus: one producer per service, started lazily, restarted after failures."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from crm_kit.settings import KafkaSettings

log = logging.getLogger(__name__)


class Bus:
    """Hands out a started producer (acks=all); a broken one is replaced on the next call."""

    def __init__(self, kafka: KafkaSettings, client_id: str) -> None:
        self.kafka = kafka
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.kafka.bootstrap,
                    client_id=self.client_id,
                    acks="all",
                    linger_ms=5,
                    request_timeout_ms=self.kafka.request_timeout_ms,
                    max_request_size=4 * 1024 * 1024,
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        """Drop the producer after an error; the next call starts a fresh one."""
        async with self._lock:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                try:
                    await producer.stop()
                except Exception as exc:
                    log.debug("stopping a broken producer: %s", exc)

    async def ready(self, timeout: float = 2.0) -> bool:
        try:
            producer = await asyncio.wait_for(self.producer(), timeout)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.reset()
