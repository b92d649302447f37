"""campaign app: its view of customers kept from customer.*, churn.score and ticketing.ticket; campaigns with their
offers, audiences and control groups; the calendar's tick that launches, dispatches and closes them."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from crm_campaign import events
from crm_campaign.api import campaigns, customers, deliveries
from crm_campaign.domain import attribution, dispatch
from crm_campaign.domain.policy import PolicySettings
from crm_campaign.settings import Settings
from crm_kit.db import utcnow
from crm_kit.events import load_contracts
from crm_kit.periodic import repeat
from crm_kit.service import Runtime, create_service_app


def contact_policy(settings: Settings) -> PolicySettings:
    return PolicySettings(
        quiet_start=settings.quiet_start,
        quiet_end=settings.quiet_end,
        weekly_marketing_cap=settings.weekly_marketing_cap,
        exclude_open_complaints=settings.exclude_open_complaints,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    policy = contact_policy(settings)

    async def start_jobs(rt: Runtime) -> None:
        """Beside the outbox relay, stopped with it: the campaign calendar's tick and the report gauges."""
        adapter = dispatch.OutboxChannel(rt.contracts)

        async def tick() -> None:
            await dispatch.run_due(
                rt.db,
                adapter,
                policy,
                utcnow(),
                batch_size=settings.dispatch_batch_size,
                rate_per_second=settings.dispatch_rate_per_second,
            )

        calendar = repeat(tick, settings.dispatch_seconds, what="running the campaign calendar")
        rt.tasks.append(asyncio.create_task(calendar, name=f"{rt.name}-calendar"))
        gauges = attribution.run_gauges(rt.db, settings.report_gauge_seconds)
        rt.tasks.append(asyncio.create_task(gauges, name=f"{rt.name}-report-gauges"))

    app = create_service_app(
        name="campaign",
        title="CRM campaign service",
        description=(
            "Campaigns and retention (营销活动与维系): audiences from segments and rules over the customers' tiers, "
            "risk bands and consents; offers; a reproducible control group (对照组) per campaign; contacts sent "
            "through channel adapters under the contact policy (consent, do-not-disturb, quiet hours, frequency caps, "
            "open complaints, priority)."
        ),
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=[campaigns.router, deliveries.router, customers.router],
        subscriptions=[events.subscription(load_contracts(settings.contracts_dir.resolve()), settings.consumer_group)],
        on_startup=start_jobs,
    )
    app.state.contact_policy = policy
    return app
