"""campaign app: its view of customers kept from customer.*, churn.score and ticketing.ticket; campaigns with their
offers, audiences and control groups."""

from pathlib import Path

from fastapi import FastAPI

from crm_campaign import events
from crm_campaign.api import campaigns
from crm_campaign.settings import Settings
from crm_kit.service import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="campaign",
        title="CRM campaign service",
        description=(
            "Campaigns and retention (营销活动与维系): audiences from segments and rules over the customers' tiers, "
            "risk bands and consents; offers; a reproducible control group (对照组) per campaign; the campaign's "
            "life from draft to completed."
        ),
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=[campaigns.router],
        subscriptions=[events.subscription(settings.consumer_group)],
    )
