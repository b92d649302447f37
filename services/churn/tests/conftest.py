"""The churn service under test: one app per test, served over real HTTP, on a real database (a SQLite file, or
PostgreSQL when CRM_TEST_DATABASE_URL says so), fed through the real broker as the other services feed it.

`churn.send(...)` publishes events as their producers' relays would (keyed by customer, structured CloudEvents JSON)
and returns once the consumer has taken every one of them (applied, found a duplicate, passed over or
dead-lettered); `store` reads the feature store's tables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select

from crm_churn.app import create_app
from crm_churn.domain.ingest import CONSUMED
from crm_churn.models import Fact, Line, Profile, Score, UsageDay
from crm_churn.settings import Settings
from crm_kit.db import Database
from crm_kit.events import CloudEvent, Contracts, load_contracts, new_event, topic_of
from crm_kit.settings import KafkaSettings
from crm_kit.testing import deliver, eventually, serve

SOURCES = {
    "billing": "/crm/billing-adapter/boss-dev",
    "ticketing": "/crm/ticketing",
    "campaign": "/crm/campaign",
    "customer": "/crm/customer",
}
"""Who publishes each domain's events."""
TOPICS = sorted({topic_of(t) for t in CONSUMED})


@dataclass
class Churn:
    """A running churn service, as the bus and its users see it."""

    url: str
    http: httpx.AsyncClient
    bootstrap: str
    database_url: str
    contracts: Contracts

    def example(self, event_type: str, name: str | None = None, **changes: Any) -> dict[str, Any]:
        """The data of the contract's example `name` (the first, by name, when not given), `changes` replacing
        members."""
        folder = self.contracts.root / "examples" / event_type
        path = folder / f"{name}.json" if name else sorted(folder.glob("*.json"))[0]
        return {**json.loads(path.read_text(encoding="utf-8")), **changes}

    def event(self, event_type: str, data: dict[str, Any]) -> CloudEvent:
        """An event as its producer publishes it, keyed by its customer (a merge by the survivor); not checked, so a
        test may send a broken one."""
        subject = data.get("customer_id") or data["survivor_id"]
        return new_event(event_type, source=SOURCES[event_type.split(".")[0]], subject=subject, data=data)

    def valid(self, event_type: str, data: dict[str, Any]) -> CloudEvent:
        """An event as its producer publishes it, checked against its contract."""
        event = self.event(event_type, data)
        self.contracts.validate_event(event)
        return event

    async def send(self, *events: CloudEvent) -> None:
        """Publish each on its topic, keyed by its subject, in order, and wait until the consumer has taken them
        all."""
        await deliver(self.http, "churn", self.bootstrap, events, TOPICS)

    async def ready(self) -> bool:
        return (await self.http.get("/health/ready")).status_code == 200


STORE_ORDER = {
    Profile: (Profile.customer_id,),
    Line: (Line.subscription_id,),
    UsageDay: (UsageDay.customer_id, UsageDay.day, UsageDay.subscription_id),
    Fact: (Fact.customer_id, Fact.occurred_at, Fact.kind, Fact.ref, Fact.amount_fen, Fact.quantity, Fact.detail),
    Score: (Score.customer_id, Score.kind),
}


class Store:
    """The feature store's tables as rows of plain dicts (a fact without its surrogate id)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, model: type, **where: Any) -> list[dict[str, Any]]:
        table = model.__table__  # type: ignore[attr-defined]
        query = select(table).where(*(table.c[k] == v for k, v in where.items())).order_by(*STORE_ORDER[model])
        async with self.db.sessions() as session:
            found = (await session.execute(query)).mappings().all()
        return [{k: v for k, v in row.items() if not (model is Fact and k == "id")} for row in found]

    async def profile(self, customer_id: str) -> dict[str, Any] | None:
        found = await self.rows(Profile, customer_id=customer_id)
        return found[0] if found else None

    async def lines(self, customer_id: str) -> list[dict[str, Any]]:
        return await self.rows(Line, customer_id=customer_id)

    async def usage(self, customer_id: str) -> list[dict[str, Any]]:
        return await self.rows(UsageDay, customer_id=customer_id)

    async def facts(self, customer_id: str) -> list[dict[str, Any]]:
        return await self.rows(Fact, customer_id=customer_id)

    async def contents(self) -> dict[str, list[dict[str, Any]]]:
        """Everything the store holds, in a stable order: two stores with equal contents know the same."""
        return {model.__tablename__: await self.rows(model) for model in STORE_ORDER}  # type: ignore[attr-defined]


@asynccontextmanager
async def open_store(database_url: str) -> AsyncIterator[Store]:
    db = Database(database_url)
    try:
        yield Store(db)
    finally:
        await db.dispose()


Starter = Callable[[], AbstractAsyncContextManager[Churn]]


@pytest_asyncio.fixture
async def churn_settings(kafka: KafkaSettings, database_url: Any) -> Settings:
    """No daily batch scoring: a test scores when it means to."""
    return Settings(database_url=await database_url("churn"), kafka=kafka, log_json=False, batch_score_hour=None)


@pytest_asyncio.fixture
async def start_churn(churn_settings: Settings, kafka: KafkaSettings) -> Starter:
    """Start the churn service on this test's database and broker; ready (its consumer in its group) when entered."""

    @asynccontextmanager
    async def run() -> AsyncIterator[Churn]:
        async with (
            serve(create_app(churn_settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            service = Churn(
                url,
                http,
                kafka.bootstrap,
                churn_settings.database_url,
                load_contracts(churn_settings.contracts_dir.resolve()),
            )
            await eventually(service.ready, timeout=30, interval=0.05)
            yield service

    return run


@pytest_asyncio.fixture
async def churn(start_churn: Starter) -> AsyncIterator[Churn]:
    async with start_churn() as running:
        yield running


@pytest_asyncio.fixture
async def store(churn: Churn) -> AsyncIterator[Store]:
    async with open_store(churn.database_url) as opened:
        yield opened
