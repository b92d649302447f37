"""The ticketing service under test: one app per test, served over real HTTP, on a real database (a SQLite file, or
PostgreSQL when CRM_TEST_DATABASE_URL says so), fed and read through the real broker.

Time: the app takes the instant of each request from its `clock` dependency. Here that is a `TestClock` the test
sets and moves, so a ticket can be opened on a Friday afternoon and taken up again on the Monday within one test.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from crm_kit.db import Database
from crm_kit.events import CloudEvent, Contracts, load_contracts, new_event
from crm_kit.settings import KafkaSettings
from crm_kit.testing import bearer, eventually, publish, read_topic, serve
from crm_ticketing.api.tickets import clock
from crm_ticketing.app import create_app
from crm_ticketing.domain.sla import SHANGHAI
from crm_ticketing.settings import Settings

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
TICKET_TOPIC = "ticketing.ticket"
PROFILE_TOPIC = "customer.profile"
AGENT = bearer("agent-0001", roles=("agent",))


class TestClock:
    """The instant the service's requests happen at: it starts on Monday 23 November 2026, 10:00 in Shanghai, and
    moves only when the test moves it."""

    __test__ = False

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI)

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    async def __call__(self) -> datetime:
        return self.now


@dataclass
class Ticketing:
    """A running ticketing service, as its users and the bus see it; requests go as agent-0001 unless told."""

    url: str
    http: httpx.AsyncClient
    bootstrap: str
    clock: TestClock
    database_url: str
    contracts: Contracts

    @staticmethod
    def body(customer_id: str = "C110000012345", **changes: Any) -> dict[str, Any]:
        """A billing complaint as the hotline desk files it, every TMF member given; `changes` replace members."""
        body: dict[str, Any] = {
            "description": "本月账单多扣30元流量费, 客户称未使用",
            "ticketType": "complaint",
            "priority": "medium",
            "severity": "minor",
            "name": "流量费用异常",
            "category": "billing_dispute",
            "channel": {"id": "hotline", "name": "10086"},
            "relatedParty": [{"id": customer_id, "role": "customer", "@referredType": "Individual", "name": "张三"}],
            "relatedEntity": [
                {"id": "B202611-0042", "role": "disputedBill", "@referredType": "CustomerBill"},
                {"id": "S0042", "role": "affectedLine", "@referredType": "Subscription", "name": "138****0042"},
            ],
            "note": [{"text": "客户要求退还差额"}],
            "attachment": [
                {
                    "id": "DOC-7",
                    "name": "bill.pdf",
                    "url": "https://docs.crm.example/DOC-7",
                    "mimeType": "application/pdf",
                }
            ],
            "externalIdentifier": [
                {"id": "MIIT-2026-000123", "owner": "MIIT", "externalIdentifierType": "regulatorCase"}
            ],
            "requestedResolutionDate": "2026-11-27T18:00:00+08:00",
        }
        body.update(changes)
        return body

    async def create(self, customer_id: str = "C110000012345", **changes: Any) -> dict[str, Any]:
        r = await self.http.post(TICKETS, json=self.body(customer_id, **changes))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def get(self, ticket_id: str, **params: str) -> dict[str, Any]:
        r = await self.http.get(f"{TICKETS}/{ticket_id}", params=params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def patch(self, ticket_id: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        """A merge-patch, as `application/merge-patch+json` unless `headers` say otherwise."""
        return await self.http.patch(
            f"{TICKETS}/{ticket_id}",
            content=json.dumps(body),
            headers={"Content-Type": "application/merge-patch+json", **headers},
        )

    async def move(self, ticket_id: str, status: str, reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if reason:
            body["statusChangeReason"] = reason
        r = await self.patch(ticket_id, body)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def list(self, **params: str) -> tuple[list[dict[str, Any]], int]:
        """A page and the total, the result count checked against the page."""
        r = await self.http.get(TICKETS, params=params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()
        assert int(r.headers["X-Result-Count"]) == len(items)
        return items, int(r.headers["X-Total-Count"])

    async def ticket_events(self, expect: int) -> list[tuple[str, CloudEvent]]:
        """(key, event) of everything on ticketing.ticket, once at least `expect` are there."""
        records = await read_topic(self.bootstrap, TICKET_TOPIC, expect=expect)
        return [((r.key or b"").decode(), CloudEvent.model_validate_json(r.value or b"")) for r in records]

    def profile_event(self, event_type: str, example: str, **changes: Any) -> CloudEvent:
        """The contract's example `example` of a customer.profile type as the customer service publishes it, valid."""
        path = self.contracts.root / "examples" / event_type / f"{example}.json"
        data = {**json.loads(path.read_text(encoding="utf-8")), **changes}
        event = new_event(
            event_type, source="/crm/customer", subject=data.get("customer_id") or data["survivor_id"], data=data
        )
        self.contracts.validate_event(event)
        return event

    async def send_profile(self, *events: CloudEvent) -> None:
        """Publish on customer.profile, keyed by customer, and wait until the consumer has taken them in."""
        before = await self.consumed()
        await publish(self.bootstrap, PROFILE_TOPIC, [(e.subject or "", e.to_json().encode()) for e in events])

        async def taken_in() -> float | None:
            now = await self.consumed()
            return now if now >= before + len(events) else None

        await eventually(taken_in, timeout=15)

    async def consumed(self) -> float:
        """customer.profile events the consumer has applied or found to be duplicates (counters live as long as the
        test process: compare with a value read before)."""
        total = 0.0
        for family in text_string_to_metric_families((await self.http.get("/metrics")).text):
            for sample in family.samples:
                if (
                    sample.name == "crm_ticketing_events_consumed_total"
                    and sample.labels.get("topic") == PROFILE_TOPIC
                    and sample.labels.get("outcome") in ("applied", "duplicate")
                ):
                    total += sample.value
        return total

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[Database]:
        """The service's own database, for what only its tables show (a clock's due_at, the rows a delete removed)."""
        db = Database(self.database_url)
        try:
            yield db
        finally:
            await db.dispose()

    async def ready(self) -> bool:
        return (await self.http.get("/health/ready")).status_code == 200


Starter = Callable[[], AbstractAsyncContextManager[Ticketing]]


@pytest.fixture
def test_clock() -> TestClock:
    return TestClock()


@pytest_asyncio.fixture
async def ticketing_settings(kafka: KafkaSettings, database_url: Any) -> Settings:
    """The SLA scanner runs on the real clock: out of the way of tests that drive a clock of their own (the
    scanner's own test shortens it). No consumer: joining its group takes a second on this broker, and leaving it
    while joining as long; the tests that feed customer.profile ask for it (`consuming`)."""
    return Settings(
        database_url=await database_url("ticketing"),
        kafka=kafka,
        log_json=False,
        sla_scan_seconds=3600,
        consumers=False,
    )


@pytest.fixture
def consuming(ticketing_settings: Settings) -> Settings:
    """The service with its customer.profile consumer, for the tests that publish to it."""
    ticketing_settings.consumers = True
    return ticketing_settings


@pytest.fixture
def start_ticketing(ticketing_settings: Settings, kafka: KafkaSettings, test_clock: TestClock) -> Starter:
    """Start the ticketing service on this test's database, broker and clock; ready when entered (with the consumer
    assigned, for the tests `consuming`)."""

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[Ticketing]:
        app = create_app(ticketing_settings)
        app.dependency_overrides[clock] = test_clock
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10, headers=AGENT) as http:
            service = Ticketing(
                url,
                http,
                kafka.bootstrap,
                test_clock,
                ticketing_settings.database_url,
                load_contracts(ticketing_settings.contracts_dir.resolve()),
            )
            await eventually(service.ready, timeout=30, interval=0.05)
            yield service

    return run


@pytest_asyncio.fixture
async def service(start_ticketing: Starter) -> AsyncIterator[Ticketing]:
    async with start_ticketing() as running:
        yield running
