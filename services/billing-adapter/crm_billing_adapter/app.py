"""billing-adapter app: the BOSS push API, file imports, the quarantine, and the outbox relay to billing.* topics."""

import asyncio
from pathlib import Path

from fastapi import FastAPI

from crm_billing_adapter.api import routers
from crm_billing_adapter.api.imports import IMPORTS
from crm_billing_adapter.domain.imports import ImportWorker
from crm_billing_adapter.settings import Settings
from crm_kit.service import Runtime, create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start_import_worker(rt: Runtime) -> None:
        """Beside the outbox relay, stopped with it: the worker that reads uploaded files (话单文件) in."""
        if settings.import_worker:
            worker = ImportWorker(
                rt.db,
                rt.contracts,
                chunk_lines=settings.import_chunk_lines,
                lease_seconds=settings.import_lease_seconds,
                poll_seconds=settings.import_poll_seconds,
            )
            rt.tasks.append(asyncio.create_task(worker.run(), name=f"{rt.name}-imports"))

    return create_service_app(
        name="billing-adapter",
        title="CRM billing adapter",
        description="The only door from the operator's BOSS/billing system: validated, de-duplicated, published.",
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        on_startup=start_import_worker,
        body_limits={IMPORTS: settings.import_max_bytes},
    )
