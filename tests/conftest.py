"""The running system for the journeys: broker, billing-adapter, customer, ticketing, churn, campaign and gateway
on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pytest_asyncio

from crm_billing_adapter.app import create_app as billing_adapter_app
from crm_billing_adapter.settings import Settings as BillingAdapterSettings
from crm_campaign.api.access import clock as campaign_clock
from crm_campaign.app import create_app as campaign_app
from crm_campaign.settings import Settings as CampaignSettings
from crm_churn.app import create_app as churn_app
from crm_churn.settings import Settings as ChurnSettings
from crm_customer.app import create_app as customer_app
from crm_customer.settings import Settings as CustomerSettings
from crm_gateway.app import create_app as gateway_app
from crm_gateway.domain.limits import LimitSettings
from crm_gateway.settings import Settings as GatewaySettings
from crm_kit.broker import free_port
from crm_kit.db import utcnow
from crm_kit.settings import AuthSettings, KafkaSettings
from crm_kit.testing import bearer, serve
from crm_ticketing.app import create_app as ticketing_app
from crm_ticketing.settings import Settings as TicketingSettings


@dataclass
class Clock:
    """The campaign service's now: the real one until a journey sets it, so a campaign can run in simulated time."""

    at: datetime | None = None

    async def now(self) -> datetime:
        return self.at or utcnow()


JOURNEY_LIMITS = LimitSettings(default_rate_per_second=10_000, default_burst=10_000, routes=[])
"""A journey plays a whole province's agents and back offices with one token each: the per-client limits meant for
one console or partner app would throttle it (they are tested on their own in `gateway/tests`)."""


@dataclass
class System:
    gateway: httpx.AsyncClient
    customer_settings: CustomerSettings
    customer_port: int
    stack: contextlib.AsyncExitStack
    campaign_clock: Clock = field(default_factory=Clock)
    metrics_url: str = ""
    """Prometheus metrics of the services: one process here, so one registry holds every service's."""

    @contextlib.asynccontextmanager
    async def customer_service(self) -> AsyncIterator[str]:
        """Start (or restart) the customer service on its port, on the same database."""
        async with serve(customer_app(self.customer_settings), self.customer_port) as url:
            yield url


@pytest_asyncio.fixture
async def system(kafka: KafkaSettings, database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[System]:
    customer_port, gateway_port = free_port(), free_port()
    # the services verify the gateway's RS256 tokens with its JWKS, and the tests' shared-secret tokens as well
    auth = AuthSettings(jwks_url=f"http://127.0.0.1:{gateway_port}/.well-known/jwks.json")
    common = {"kafka": kafka, "log_json": False, "auth": auth}
    customer_settings = CustomerSettings(database_url=await database_url("customer"), **common)
    adapter = BillingAdapterSettings(database_url=await database_url("billing-adapter"), **common)
    ticketing = TicketingSettings(database_url=await database_url("ticketing"), **common)
    churn = ChurnSettings(database_url=await database_url("churn"), batch_score_hour=None, **common)
    # the campaign calendar ticks on the real clock once at start, then not within a journey: campaigns are driven
    # through the API, in the journey's time
    campaign = CampaignSettings(database_url=await database_url("campaign"), dispatch_seconds=3600, **common)
    clock = Clock()
    campaigns = campaign_app(campaign)
    campaigns.dependency_overrides[campaign_clock] = clock.now
    async with contextlib.AsyncExitStack() as stack:
        adapter_url = await stack.enter_async_context(serve(billing_adapter_app(adapter)))
        ticketing_url = await stack.enter_async_context(serve(ticketing_app(ticketing)))
        churn_url = await stack.enter_async_context(serve(churn_app(churn)))
        campaign_url = await stack.enter_async_context(serve(campaigns))
        gateway_url = await stack.enter_async_context(
            serve(
                gateway_app(
                    GatewaySettings(
                        customer_url=f"http://127.0.0.1:{customer_port}",
                        billing_adapter_url=adapter_url,
                        ticketing_url=ticketing_url,
                        churn_url=churn_url,
                        campaign_url=campaign_url,
                        database_url=await database_url("gateway"),
                        log_json=False,
                        limits=JOURNEY_LIMITS,
                    )
                ),
                gateway_port,
            )
        )
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=15, headers=bearer()))
        yield System(client, customer_settings, customer_port, stack, clock, f"{campaign_url}/metrics")
