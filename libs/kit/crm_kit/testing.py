"""Pytest fixtures for every suite: a real broker, a real database (SQLite file or PostgreSQL), real HTTP.

Loaded with `pytest_plugins = ["crm_kit.testing"]` in the root conftest.
`CRM_TEST_DATABASE_URL=postgresql+asyncpg://…` runs the same tests on PostgreSQL: each test gets
fresh databases, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from crm_kit.auth import issue_token
from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.errors import PROBLEM_BASE, PROBLEM_JSON
from crm_kit.events import CloudEvent
from crm_kit.settings import AuthSettings, KafkaSettings
from crm_kit.signing import DEV_SECRET, DEV_SOURCE, signed_push

T = TypeVar("T")


class TestEnvironment(BaseSettings):
    """What the test run is pointed at (`CRM_TEST_*`)."""

    __test__ = False
    model_config = SettingsConfigDict(env_prefix="CRM_TEST_", extra="ignore")

    database_url: str | None = None


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """A fresh broker per test: no test sees another's topics, offsets or groups."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    """Bus settings for tests: short group timeouts so joins and restarts take about a second."""
    return KafkaSettings(
        bootstrap=broker.bootstrap,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        rebalance_timeout_ms=500,
        request_timeout_ms=5000,
    )


@pytest_asyncio.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """A factory: `await database_url("customer")` → a URL of an empty database for this test."""
    server = TestEnvironment().database_url
    created: list[str] = []

    async def make(name: str) -> str:
        if not server:
            return f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        db = f"crm_test_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        await _admin(server, f'CREATE DATABASE "{db}"')
        created.append(db)
        return make_url(server).set(database=db).render_as_string(hide_password=False)

    yield make
    for db in created:
        await _admin(server or "", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


async def _admin(server: str, sql: str) -> None:
    url = make_url(server).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def serve(app: Any, port: int | None = None, **options: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a real loopback port (with its lifespan); yields the base URL. `options` go to
    `uvicorn.Config`."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy; fail with the last value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 10.0) -> list[ConsumerRecord]:
    """Everything on `topic` from the start (no consumer group), once at least `expect` records are there."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expect and not batch:
                break
    finally:
        await consumer.stop()
    return records


async def publish(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Put raw (key, value) records on a topic, as another service's relay would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


async def taken(http: httpx.AsyncClient, service: str, topics: Collection[str]) -> float:
    """Records of `topics` the service's consumers are done with — consumed (applied, duplicate, passed over) or
    dead-lettered — from its /metrics. The counters live as long as the process: compare with a value read before."""
    total = 0.0
    wanted = {f"crm_{service}_events_consumed_total", f"crm_{service}_dlq_total"}
    for family in text_string_to_metric_families((await http.get("/metrics")).text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("topic") in topics:
                total += sample.value
    return total


async def deliver(
    http: httpx.AsyncClient,
    service: str,
    bootstrap: str,
    events: Sequence[CloudEvent],
    topics: Collection[str],
    timeout: float = 20,
) -> None:
    """Publish each event on its topic keyed by its subject, in order (batched), as its producer's relay would, and
    return once the service (its /metrics at `http`) has taken every one of them."""
    before = await taken(http, service, topics)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(e.topic, e.to_json().encode(), key=(e.subject or "").encode()) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    async def done() -> bool | None:
        return True if await taken(http, service, topics) >= before + len(events) else None

    await eventually(done, timeout=timeout)


TEST_TOKEN_TTL = timedelta(hours=6)
"""Tests make their headers when modules load, and the whole suite may run longer than an access token's 15
minutes: their tokens outlive the run (tests of expiry pass their own `ttl`)."""


def bearer(
    subject: str = "agent-0001", roles: tuple[str, ...] = ("agent",), scopes: tuple[str, ...] = (), **claims: Any
) -> dict[str, str]:
    """An Authorization header with a token signed by the default (test) key."""
    claims.setdefault("ttl", TEST_TOKEN_TTL)
    token = issue_token(AuthSettings(), subject, roles=roles, scopes=scopes, **claims)
    return {"Authorization": f"Bearer {token}"}


BOSS_EVENTS = "/boss/v1/events"


async def boss_push(
    client: httpx.AsyncClient,
    records_or_body: list[Any] | bytes,
    *,
    source: str = DEV_SOURCE,
    secret: str = DEV_SECRET,
    content_type: str = "application/json",
    gzip: bool = False,
    now: float | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a signed BOSS push (records, or a body as given) to `/boss/v1/events` of the adapter or the gateway,
    by default as the dev source; `headers` add to or override (whatever their case) the built ones."""
    body, built = signed_push(records_or_body, source, secret, content_type=content_type, gzip=gzip, now=now)
    sent = httpx.Headers(built)
    sent.update(headers or {})
    return await client.post(BOSS_EVENTS, content=body, headers=sent)


def assert_problem(
    r: httpx.Response, status: int, field: str | None = None, *, slug: str | None = None
) -> dict[str, Any]:
    """`r` is an RFC 9457 problem+json answer with `status` (and the `field` at fault, the `slug` of its type, when
    given) carrying the request id it was sent under; its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE)
    assert body["request_id"] == r.headers["X-Request-ID"]
    if field is not None:
        assert body["field"] == field, body
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    return body
