"""The customer service under test: one app per test, served over real HTTP, on a real database,
fed through the real broker with CloudEvents shaped exactly as the billing-adapter's relay publishes them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from crm_customer.app import create_app
from crm_customer.settings import Settings
from crm_kit.events import CloudEvent, Contracts, load_contracts, new_event
from crm_kit.settings import KafkaSettings, find_contracts_dir
from crm_kit.testing import bearer, eventually, publish, read_topic, serve

TOPIC = "billing.subscription"
PROFILE_TOPIC = "customer.profile"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
ADAPTER_SOURCE = "/crm/billing-adapter/boss"
BOSS_NAMESPACE = uuid.UUID("6f1c2a4e-8d0b-4c1e-9a57-0b9c3d2e7f10")


class Boss:
    """Builds billing.* CloudEvents as the billing-adapter's relay puts them on the bus:
    data carries `boss_event_id`, the event id is derived from it, `subject` and key are the customer id,
    `time` is when the change took effect."""

    PLAN_129: ClassVar[dict[str, Any]] = {"code": "5G-ULT-129", "name": "5G畅享套餐129元", "monthly_fee_fen": 12900}
    PLAN_199: ClassVar[dict[str, Any]] = {"code": "5G-ULT-199", "name": "5G畅享套餐199元", "monthly_fee_fen": 19900}

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._seq = itertools.count(1)
        self.contracts_dir: Path = find_contracts_dir()
        self.contracts: Contracts = load_contracts(self.contracts_dir.resolve())

    def example(self, event_type: str, name: str) -> dict[str, Any]:
        """A valid example of `event_type` from `contracts/examples/`."""
        path = self.contracts_dir / "examples" / event_type / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def event(
        self,
        kind: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> CloudEvent:
        data = {"boss_event_id": f"BOSS-EVT:T:{next(self._seq):06d}", **data}
        event = new_event(
            f"billing.subscription.{kind}.v1",
            source=ADAPTER_SOURCE,
            subject=data["customer_id"],
            data=data,
            event_id=event_id or str(uuid.uuid5(BOSS_NAMESPACE, f"boss/{data['boss_event_id']}")),
            time=_effective_time(data.get("occurred_at")),
        )
        event.correlationid = correlation_id
        return event

    async def send(self, *events: CloudEvent) -> None:
        """Publish on billing.subscription, keyed by customer id, in this order (one customer → one partition)."""
        await publish(self.bootstrap, TOPIC, [(e.subject or "", e.to_json().encode()) for e in events])

    async def send_raw(self, key: str, *values: bytes) -> None:
        """Records that may not even be JSON, keyed by customer id."""
        await publish(self.bootstrap, TOPIC, [(key, v) for v in values])

    def billing(self, event_type: str, data: dict[str, Any], *, event_id: str | None = None) -> CloudEvent:
        """Any billing.* event (usage, invoice, payment, account) as the relay publishes it."""
        data = {"boss_event_id": f"BOSS-EVT:T:{next(self._seq):06d}", **data}
        return new_event(
            event_type,
            source=ADAPTER_SOURCE,
            subject=data["customer_id"],
            data=data,
            event_id=event_id or str(uuid.uuid5(BOSS_NAMESPACE, f"boss/{data['boss_event_id']}")),
            time=_effective_time(data.get("occurred_at")),
        )

    def produced(self, event_type: str, name: str, **changes: Any) -> CloudEvent:
        """The contract's example `name` of another service's type (ticketing, churn, campaign) as that producer
        publishes it: subject = customer, time = occurred_at (`changes` override data)."""
        data = {**self.example(event_type, name), **changes}
        return new_event(
            event_type,
            source=f"/crm/{event_type.split('.')[0]}",
            subject=data["customer_id"],
            data=data,
            time=_effective_time(data.get("occurred_at")),
        )

    def billing_example(self, event_type: str, name: str, **changes: Any) -> CloudEvent:
        """The contract's example `name` of a billing.* type, with a fresh boss_event_id (`changes` override data)."""
        data = {k: v for k, v in self.example(event_type, name).items() if k != "boss_event_id"}
        return self.billing(event_type, {**data, **changes})

    async def send_billing(self, *events: CloudEvent) -> None:
        """Each event on its own topic (billing.invoice, ticketing.ticket, …), keyed by customer id, in order."""
        for topic, run in itertools.groupby(events, key=lambda e: e.topic):
            await publish(self.bootstrap, topic, [(e.subject or "", e.to_json().encode()) for e in run])

    def from_example(self, event_type: str, name: str, **changes: Any) -> CloudEvent:
        """The contract's example `name` of `event_type` as the relay would publish it (`changes` override data)."""
        data = {**self.example(event_type, name), **changes}
        return self.event(event_type.removeprefix("billing.subscription.").removesuffix(".v1"), data)

    def activated(
        self,
        customer: str,
        line: str,
        msisdn: str,
        at: str,
        *,
        name: str = "张伟",
        customer_type: str = "individual",
        region: str = "BJ",
        id_card_no: str | None = "110105198803120516",
        plan: dict[str, Any] | None = None,
        payment_mode: str = "postpaid",
        account: str | None = None,
        **kwargs: Any,
    ) -> CloudEvent:
        party: dict[str, Any] = {"name": name, "type": customer_type, "region": region}
        if id_card_no:
            party["id_card_no"] = id_card_no
        data = {
            "customer_id": customer,
            "account_id": account or f"A{customer[1:]}",
            "subscription_id": line,
            "msisdn": msisdn,
            "occurred_at": at,
            "customer": party,
            "plan": plan or self.PLAN_129,
            "payment_mode": payment_mode,
        }
        return self.event("activated", data, **kwargs)

    def line(
        self,
        kind: str,
        customer: str,
        line: str,
        msisdn: str,
        at: str,
        *,
        account: str | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
        **extra: Any,
    ) -> CloudEvent:
        """plan_changed / suspended / resumed / terminated / ported_out; `extra` is the type's own fields."""
        data = {
            "customer_id": customer,
            "account_id": account or f"A{customer[1:]}",
            "subscription_id": line,
            "msisdn": msisdn,
            "occurred_at": at,
            **extra,
        }
        return self.event(kind, data, event_id=event_id, correlation_id=correlation_id)


def _effective_time(occurred_at: Any) -> datetime | None:
    """The relay sets `time` to when the change took effect; None (now) when that is not a zoned time."""
    try:
        moment = datetime.fromisoformat(str(occurred_at).upper())
    except ValueError:
        return None
    return moment if moment.tzinfo else None


@dataclass
class CustomerService:
    """A running customer service, as its users and the bus see it."""

    url: str
    http: httpx.AsyncClient
    bootstrap: str

    async def customer(self, customer_id: str, **params: str) -> dict[str, Any] | None:
        r = await self.http.get(f"{CUSTOMERS}/{customer_id}", params=params)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def wait_for(
        self, customer_id: str, check: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 10
    ) -> dict[str, Any]:
        """The customer once it exists and `check` holds."""

        async def probe() -> dict[str, Any] | None:
            found = await self.customer(customer_id)
            return found if found is not None and check(found) else None

        return await eventually(probe, timeout)

    async def view360(
        self, customer_id: str, check: Callable[[dict[str, Any]], bool] = lambda _: True, **params: Any
    ) -> dict[str, Any]:
        """The 360 view once the customer exists and `check` holds."""

        async def probe() -> dict[str, Any] | None:
            r = await self.http.get(f"/api/v1/customers/{customer_id}/view360", params=params)
            return r.json() if r.status_code == 200 and check(r.json()) else None  # type: ignore[no-any-return]

        return await eventually(probe, timeout=15)

    async def ready(self) -> bool:
        return (await self.http.get("/health/ready")).status_code == 200

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels match (0 when there are none yet)."""
        text = (await self.http.get("/metrics")).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    async def consumed(self, **labels: str) -> float:
        return await self.metric("crm_customer_events_consumed_total", topic=TOPIC, **labels)

    async def profile_events(self, expect: int, timeout: float = 10) -> list[tuple[str, CloudEvent]]:
        """(key, event) of everything published on customer.profile, once at least `expect` are there."""
        records = await read_topic(self.bootstrap, PROFILE_TOPIC, expect=expect, timeout=timeout)
        return [((r.key or b"").decode(), CloudEvent.model_validate_json(r.value or b"")) for r in records]

    async def wait_consumed(self, at_least: float, timeout: float = 10, **labels: str) -> float:
        """Until the consumer has counted `at_least` events with these labels (the effects are committed by then)."""

        async def probe() -> float | None:
            value = await self.consumed(**labels)
            return value if value >= at_least else None

        return await eventually(probe, timeout)


Starter = Callable[[], AbstractAsyncContextManager[CustomerService]]


@pytest.fixture
def boss(kafka: KafkaSettings) -> Boss:
    return Boss(kafka.bootstrap)


@pytest_asyncio.fixture
async def customer_settings(kafka: KafkaSettings, database_url: Any) -> Settings:
    return Settings(database_url=await database_url("customer"), kafka=kafka, log_json=False)


@pytest.fixture
def start_customer(customer_settings: Settings, kafka: KafkaSettings) -> Starter:
    """Start (or restart) the customer service on this test's database and broker; ready when entered."""

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[CustomerService]:
        async with (
            serve(create_app(customer_settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=10, headers=bearer()) as http,
        ):
            service = CustomerService(url, http, kafka.bootstrap)
            await eventually(service.ready, timeout=30, interval=0.05)
            yield service

    return run


@pytest_asyncio.fixture
async def service(start_customer: Starter) -> AsyncIterator[CustomerService]:
    async with start_customer() as running:
        yield running
