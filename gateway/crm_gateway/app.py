"""Gateway app: one origin (port 8000) for every service of the CRM."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from crm_gateway.api.proxy import router
from crm_gateway.domain.routing import BOSS_FILES, RouteTable
from crm_gateway.settings import Settings
from crm_kit.observability import configure_logging, service_metrics
from crm_kit.presentation import JSONResponse
from crm_kit.service import instrument


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("gateway", settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=50)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            app.state.http = client
            yield

    app = FastAPI(
        title="Telecom CRM gateway",
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        description="One origin for the CRM's services: BOSS feed, TMF629 customers, and more.",
    )
    app.state.routes = RouteTable.from_settings(settings)
    app.state.connect_timeout = settings.connect_timeout_seconds
    instrument(app, service_metrics("gateway"), settings, body_limits={BOSS_FILES: settings.boss_upload_max_bytes})
    app.include_router(router)
    return app
