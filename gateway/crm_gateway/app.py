"""Gateway app: one origin (port 8000) for every service of the CRM."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
from fastapi import FastAPI

from crm_gateway.api import admin, auth, compose, docs
from crm_gateway.api.access_log import AccessLogMiddleware
from crm_gateway.api.proxy import router, upstream_routes
from crm_gateway.domain import tokens
from crm_gateway.domain.identity import Edge, Passwords
from crm_gateway.domain.limits import RateLimiter
from crm_gateway.domain.resilience import Resilience
from crm_gateway.domain.routing import BOSS_FILES, RouteTable
from crm_gateway.settings import Settings
from crm_gateway.transport import AiohttpTransport
from crm_kit.db import Database, upgrade_async, utcnow
from crm_kit.observability import configure_logging, service_metrics
from crm_kit.presentation import JSONResponse
from crm_kit.service import instrument

MIGRATIONS = Path(__file__).parent / "migrations"


async def open_identity(settings: Settings) -> tuple[Database, Edge]:
    """The identity store, migrated, with a signing key (made on the first start) loaded."""
    if settings.auto_migrate:
        await upgrade_async(settings.database_url, MIGRATIONS)
    db = Database(settings.database_url, pool_size=8)
    async with db.sessions.begin() as session:
        await tokens.ensure_signing_key(session, utcnow())
    longest = max(settings.access_token_seconds, settings.api_key_token_seconds)
    keys = tokens.KeyRing(
        db,
        window=timedelta(seconds=longest + settings.auth.leeway_seconds + settings.key_reload_seconds),
        reload_seconds=settings.key_reload_seconds,
    )
    await keys.reload()
    edge = Edge(
        db,
        keys,
        settings.auth,
        access_ttl=timedelta(seconds=settings.access_token_seconds),
        api_key_ttl=timedelta(seconds=settings.api_key_token_seconds),
        touch_every=timedelta(seconds=settings.api_key_touch_seconds),
        key_cache_seconds=settings.api_key_cache_seconds,
    )
    return db, edge


def upstream_client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """For the gateway's own calls (the 360 view's parts, readiness, OpenAPI documents). It keeps no cookies: a
    client shared by every caller must not hand one caller's cookie to the next."""
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(transport=transport, cookies=no_cookies, follow_redirects=False)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("gateway", settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db, app.state.edge = await open_identity(settings)
        app.state.limiter = RateLimiter.from_settings(settings.limits)
        transport = AiohttpTransport(settings.max_connections)
        try:
            async with upstream_client(transport) as client:  # closes the transport when done
                app.state.upstream = transport  # the proxy sends on it directly, past the client's layers
                app.state.http = client
                yield
        finally:
            await app.state.limiter.aclose()
            await db.dispose()

    app = FastAPI(
        title="Telecom CRM gateway",
        version="1.0.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        description="One origin for the CRM's services: BOSS feed, TMF629 customers, and more.",
        openapi_url=None,  # the merged document of every service is served by api/docs.py instead
        docs_url=None,
        redoc_url=None,
    )
    app.state.routes = RouteTable.from_settings(settings)
    app.state.settings = settings
    app.state.connect_timeout = settings.connect_timeout_seconds
    app.state.resilience = Resilience(settings.resilience)
    app.state.passwords = Passwords(
        time_cost=settings.password_time_cost,
        memory_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )
    app.add_middleware(AccessLogMiddleware)  # added first, so it runs inside the request-id middleware
    instrument(app, service_metrics("gateway"), settings, body_limits={BOSS_FILES: settings.boss_upload_max_bytes})
    app.include_router(compose.router)  # before the proxy: the 360 view lies under a customer prefix
    app.include_router(upstream_routes(app.state.routes))
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(docs.router)
    app.include_router(router)  # health, metrics, and the catch-all last
    return app
