"""churn app: the feature store's consumers (billing.*, ticketing.ticket, campaign.contact, customer.profile), the
model registry, scores online and the daily batch."""

import asyncio
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from crm_churn import events
from crm_churn.api import models, runs, scores
from crm_churn.domain import batch, gauges
from crm_churn.domain.scoring import RegionRates
from crm_churn.settings import Settings
from crm_kit.periodic import repeat
from crm_kit.service import Runtime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start_jobs(rt: Runtime) -> None:
        """Beside the outbox relay, stopped with it: the gauges' refresh and the daily scoring of the base, where one
        is set."""
        gauge_refresh = repeat(partial(gauges.refresh, rt.db), settings.gauge_seconds, what="refreshing churn gauges")
        rt.tasks.append(asyncio.create_task(gauge_refresh, name=f"{rt.name}-gauges"))
        if settings.batch_score_hour is not None:
            daily = batch.run_schedule(rt.db, rt.contracts, settings.batch_score_hour)
            rt.tasks.append(asyncio.create_task(daily, name=f"{rt.name}-daily-scoring"))

    app = create_service_app(
        name="churn",
        title="CRM churn service",
        description=(
            "Churn (离网预警) and bad-debt (坏账预测) risk: a point-in-time feature store fed by the BOSS, ticket, "
            "campaign and profile events; LightGBM models trained on it, kept in a registry and promoted only when "
            "they beat the current one; scores with the reasons an agent can read."
        ),
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=[scores.router, models.router, runs.router],
        subscriptions=[events.subscription(settings.consumer_group)],
        on_startup=start_jobs,
    )
    app.state.region_rates = RegionRates()
    return app
