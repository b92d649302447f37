"""customer app: TMF629 reads, consents and do-not-disturb, and the consumer that keeps customers and lines
in step with the BOSS."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from crm_customer import events
from crm_customer.api import accounts, billing, consents, customers, key_accounts, privacy, segments, view360
from crm_customer.domain import segments as segment_gauges
from crm_customer.settings import Settings
from crm_kit.events import load_contracts
from crm_kit.service import Runtime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    contracts = load_contracts(settings.contracts_dir.resolve())

    async def start_gauges(rt: Runtime) -> None:
        """Customers per built-in tier for the ops dashboards, beside the outbox relay and stopped with it."""
        gauges = segment_gauges.run_gauges(rt.db, settings.segment_gauge_seconds)
        rt.tasks.append(asyncio.create_task(gauges, name=f"{rt.name}-segment-gauges"))

    return create_service_app(
        name="customer",
        title="CRM customer service",
        description=(
            "Parties, accounts and lines (TMF629), fed by the BOSS's subscription events; "
            "consents and do-not-disturb (营销授权/免打扰); billing projections (ARPU, payment behaviour, "
            "30-day activity) and the interaction timeline, fed by the BOSS's billing events."
        ),
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=[
            customers.router,
            accounts.router,
            view360.router,
            consents.consent_router,
            billing.billing_router,
            segments.router,
            key_accounts.router,
            privacy.router,
        ],
        subscriptions=[
            events.subscription(contracts, settings.consumer_group),
            events.projection_subscription(contracts, settings.consumer_group),
        ],
        on_startup=start_gauges,
    )
