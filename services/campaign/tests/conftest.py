"""The campaign service under test: one app per test, served over real HTTP, on a real database (a SQLite file, or
PostgreSQL when CRM_TEST_DATABASE_URL says so), fed through the real broker as the other services feed it.

`campaign.send(...)` publishes events as their producers' relays would and returns once the consumer has taken
every one of them; `campaign.clock` is the instant the API takes as now."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from crm_campaign.api.access import clock
from crm_campaign.app import create_app
from crm_campaign.domain.attribution import RESPONSE_EVENTS
from crm_campaign.domain.projections import CONSUMED
from crm_campaign.settings import Settings
from crm_kit.events import CloudEvent, Contracts, load_contracts, new_event, topic_of
from crm_kit.settings import KafkaSettings
from crm_kit.testing import bearer, deliver, eventually, serve

SOURCES = {
    "ticketing": "/crm/ticketing",
    "customer": "/crm/customer",
    "churn": "/crm/churn",
    "billing": "/crm/billing-adapter/boss-dev",
}
TOPICS = sorted({topic_of(t) for t in (*CONSUMED, *RESPONSE_EVENTS)})
MARKETER = bearer("mkt-01", roles=("marketer",))
ANALYST = bearer("ana-01", roles=("analyst",))
AGENT = bearer("agent-7", roles=("agent",))


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 2, tzinfo=UTC))


@dataclass
class Campaigns:
    """A running campaign service, as the bus and its users see it."""

    http: httpx.AsyncClient
    bootstrap: str
    database_url: str
    contracts: Contracts
    clock: Clock

    def example(self, event_type: str, **changes: Any) -> dict[str, Any]:
        """The data of the contract's first example, `changes` replacing members."""
        folder = self.contracts.root / "examples" / event_type
        path = sorted(folder.glob("*.json"))[0]
        return {**json.loads(path.read_text(encoding="utf-8")), **changes}

    def event(self, event_type: str, **changes: Any) -> CloudEvent:
        """The contract's example with `changes`, as its producer publishes it, checked against the contract."""
        data = self.example(event_type, **changes)
        subject = data.get("customer_id") or data["survivor_id"]
        event = new_event(event_type, source=SOURCES[event_type.split(".")[0]], subject=subject, data=data)
        self.contracts.validate_event(event)
        return event

    async def send(self, *events: CloudEvent) -> None:
        await deliver(self.http, "campaign", self.bootstrap, events, TOPICS)

    async def ready(self) -> bool:
        return (await self.http.get("/health/ready")).status_code == 200


@pytest_asyncio.fixture
async def campaign(kafka: KafkaSettings, database_url: Any) -> AsyncIterator[Campaigns]:
    # the calendar's tick runs on the real clock: once at start (nothing to do yet), then never within a test
    settings = Settings(database_url=await database_url("campaign"), kafka=kafka, log_json=False, dispatch_seconds=3600)
    app = create_app(settings)
    now = Clock()

    async def fixed() -> datetime:
        return now.now

    app.dependency_overrides[clock] = fixed
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=MARKETER) as http:
        service = Campaigns(
            http, kafka.bootstrap, settings.database_url, load_contracts(settings.contracts_dir.resolve()), now
        )
        await eventually(service.ready, timeout=30, interval=0.05)
        yield service
