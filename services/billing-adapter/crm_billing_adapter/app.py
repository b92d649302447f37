"""billing-adapter app: the BOSS push API, its quarantine, and the outbox relay to billing.* topics."""

from pathlib import Path

from fastapi import FastAPI

from crm_billing_adapter.api import routers
from crm_billing_adapter.settings import Settings
from crm_kit.service import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        name="billing-adapter",
        title="CRM billing adapter",
        description="The only door from the operator's BOSS/billing system: validated, de-duplicated, published.",
        settings=settings or Settings(),
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
    )
