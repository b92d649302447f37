"""`create_service_app`: migrations, topics, relay and consumers from the lifespan; health, metrics, request ids.

A tiny service (one write route that stages an event, one consumer of that event) on a real port,
a real database migrated by Alembic, and a real broker.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.broker import free_port
from crm_kit.consumer import Subscription
from crm_kit.db import Database
from crm_kit.errors import PROBLEM_JSON
from crm_kit.events import CloudEvent, load_contracts, new_event
from crm_kit.outbox import stage
from crm_kit.service import DbSession, RuntimeDep, create_service_app
from crm_kit.settings import KafkaSettings, ServiceSettings
from crm_kit.testing import eventually, read_topic, serve

NAME = "kit-svc"
CREATED = "customer.profile.created.v1"

ENV = """from crm_kit.db import kit_metadata, run_migrations

run_migrations([kit_metadata])
"""

VERSION = '''"""The kit's outbox and inbox."""

from alembic import op

from crm_kit.db import kit_metadata

revision = "0001"
down_revision = None


def upgrade() -> None:
    kit_metadata.create_all(op.get_bind())


def downgrade() -> None:
    kit_metadata.drop_all(op.get_bind())
'''


def migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV, encoding="utf-8")
    (folder / "versions" / "0001_kit.py").write_text(VERSION, encoding="utf-8")
    return folder


def make_app(settings: ServiceSettings, tmp_path: Path, seen: list[CloudEvent]):
    router = APIRouter()

    @router.post("/profiles/{customer_id}", status_code=201)
    async def create_profile(customer_id: str, session: DbSession, rt: RuntimeDep) -> dict[str, str]:
        event = new_event(
            CREATED,
            source=NAME,
            subject=customer_id,
            data={
                "customer_id": customer_id,
                "name": None,
                "customer_type": None,
                "region": None,
                "status": "active",
                "created_at": "2026-11-20T09:30:01+08:00",
            },
        )
        await stage(session, rt.contracts, [event])
        return {"event_id": event.id}

    async def on_created(session: AsyncSession, event: CloudEvent) -> None:
        seen.append(event)

    return create_service_app(
        name=NAME,
        title="kit test service",
        description="a service made of the kit alone",
        settings=settings,
        migrations=migrations(tmp_path),
        routers=[router],
        subscriptions=[Subscription("kit-svc-group", {CREATED: on_created})],
    )


async def _ready(client: httpx.AsyncClient) -> dict | None:
    r = await client.get("/health/ready")
    return r.json() if r.status_code == 200 else None


async def test_a_service_migrates_provisions_relays_and_consumes(
    kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]], tmp_path: Path
):
    url = await database_url("svc")
    settings = ServiceSettings(database_url=url, kafka=kafka, log_json=False, outbox_poll_seconds=0.1)
    seen: list[CloudEvent] = []
    async with serve(make_app(settings, tmp_path, seen)) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        assert (await c.get("/health/live")).json() == {"status": "up"}
        ready = await eventually(lambda: _ready(c), timeout=20)
        assert ready["checks"] == {
            "database": "up",
            "broker": "up",
            "topics": "up",
            "consumer:kit-svc-group": "assigned",
        }

        r = await c.post("/profiles/C1", headers={"X-Request-ID": "req-svc-1"})
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == "req-svc-1"
        event_id = r.json()["event_id"]

        applied = await eventually(lambda: _handled(seen), timeout=10)
        assert [e.id for e in applied] == [event_id]
        [record] = await read_topic(kafka.bootstrap, "customer.profile", expect=1)
        published = json.loads(record.value)
        assert published["id"] == event_id
        assert published["correlationid"] == "req-svc-1", "the request id travels into the event"
        assert record.key == b"C1"

        metrics = (await c.get("/metrics")).text
        assert 'crm_kit_svc_http_requests_total{method="POST",route="/profiles/{customer_id}",status="201"}' in metrics
        assert "crm_kit_svc_outbox_published_total" in metrics

    # the lifespan migrated the database and provisioned every topic with its dead-letter topic
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert {"outbox", "inbox", "alembic_version"} <= tables
    finally:
        await db.dispose()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    contracts = load_contracts(settings.contracts_dir.resolve())
    assert {t.name for t in contracts.topics.values()} | {t.dlq for t in contracts.topics.values()} <= topics


async def test_an_api_only_replica_publishes_and_does_not_consume(
    kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]], tmp_path: Path
):
    """`consumers=False`: the replica serves and relays its outbox; its consumers run in another deployment."""
    settings = ServiceSettings(
        database_url=await database_url("svc"), kafka=kafka, log_json=False, outbox_poll_seconds=0.1, consumers=False
    )
    seen: list[CloudEvent] = []
    async with serve(make_app(settings, tmp_path, seen)) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        ready = await eventually(lambda: _ready(c), timeout=20)
        assert ready["checks"] == {"database": "up", "broker": "up", "topics": "up"}
        event_id = (await c.post("/profiles/C2")).json()["event_id"]
        published = await read_topic(kafka.bootstrap, "customer.profile", expect=1)
        assert event_id in {json.loads(record.value)["id"] for record in published}
        assert seen == []


async def _handled(seen: list[CloudEvent]) -> list[CloudEvent]:
    return seen


async def test_without_a_broker_the_service_is_live_not_ready_and_still_writes(
    database_url: Callable[[str], Awaitable[str]], tmp_path: Path
):
    nowhere = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}", request_timeout_ms=1000)
    settings = ServiceSettings(database_url=await database_url("svc"), kafka=nowhere, log_json=False)
    async with serve(make_app(settings, tmp_path, [])) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        assert (await c.get("/health/live")).status_code == 200
        r = await c.get("/health/ready")
        assert r.status_code == 503
        assert r.headers["content-type"] == PROBLEM_JSON
        body = r.json()
        assert body["checks"]["database"] == "up"
        assert body["checks"]["broker"] == "down"
        assert body["checks"]["consumer:kit-svc-group"] == "joining"
        assert "broker" in body["detail"]
        # the outbox absorbs the write; it waits for the broker
        created = await c.post("/profiles/C1")
        assert created.status_code == 201, created.text
