"""The embedded broker: starts on loopback, carries records, stops without leaving a process, refuses a taken port."""

from __future__ import annotations

import os
import socket

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from crm_kit.broker import EmbeddedBroker, ensure_topics, port_open
from crm_kit.events import load_contracts
from crm_kit.settings import find_contracts_dir


async def test_the_broker_carries_a_record_and_stops_leaving_no_process():
    broker = EmbeddedBroker().start()
    try:
        assert port_open(broker.host, broker.port)
        assert broker.process is not None
        pid = broker.process.pid
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            sent = await producer.send_and_wait("kit.smoke", b"hello", key=b"C1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "kit.smoke", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        try:
            record = await consumer.getone()
        finally:
            await consumer.stop()
        assert (record.key, record.value, record.offset) == (b"C1", b"hello", sent.offset)
    finally:
        broker.stop()
    assert broker.process is None
    assert not port_open(broker.host, broker.port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing it started is left in its session either
    broker.stop()  # stopping twice is harmless


def test_the_broker_refuses_a_port_that_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port=port)
        with pytest.raises(RuntimeError, match="already taken"):
            broker.start()
        assert broker.process is None


def test_a_second_broker_on_the_same_port_is_refused_and_the_first_keeps_running():
    with EmbeddedBroker() as first:
        with pytest.raises(RuntimeError, match="already taken"):
            EmbeddedBroker(port=first.port).start()
        assert first.process is not None and first.process.poll() is None
        assert port_open(first.host, first.port)


def test_the_context_manager_stops_the_broker_on_error():
    with pytest.raises(ZeroDivisionError), EmbeddedBroker() as broker:
        process = broker.process
        1 / 0  # noqa: B018
    assert process is not None and process.poll() is not None
    assert not port_open(broker.host, broker.port)


async def test_ensure_topics_creates_every_topic_and_its_dlq_and_can_run_again(broker: EmbeddedBroker):
    contracts = load_contracts(find_contracts_dir())
    await ensure_topics(broker.bootstrap, contracts)
    await ensure_topics(broker.bootstrap, contracts)  # existing topics are left alone
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([*contracts.topics, *(t.dlq for t in contracts.topics.values())])
    finally:
        await admin.close()
    partitions = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
    for topic in contracts.topics.values():
        assert partitions.get(topic.name) == topic.partitions, topic.name
        assert partitions.get(topic.dlq) == 1, topic.dlq
