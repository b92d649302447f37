"""The gateway's tests: each gets an identity store of its own (a SQLite file, or a fresh PostgreSQL database with
`CRM_TEST_DATABASE_URL`), and stand-in upstreams that echo what reached them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_gateway.app import create_app
from crm_gateway.settings import Settings
from crm_kit.testing import serve

FAST_PASSWORDS = {"password_time_cost": 1, "password_memory_kib": 8 * 1024, "password_parallelism": 1}
"""argon2id parameters cheap enough for a test (production keeps the library's defaults)."""


@pytest_asyncio.fixture(autouse=True)
async def gateway_database(database_url: Callable[[str], Awaitable[str]], monkeypatch: pytest.MonkeyPatch) -> str:
    """`CRM_GATEWAY_DATABASE_URL` of this test: a gateway built from its settings lands here, not in `var/`."""
    url = await database_url("gateway")
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", url)
    return url


def echo_upstream() -> FastAPI:
    """A stand-in service: answers with the credentials headers it was sent."""
    app = FastAPI()

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def echo(request: Request, path: str) -> JSONResponse:
        return JSONResponse(
            {
                "path": request.url.path,
                "authorization": request.headers.get("authorization"),
                "api_key": request.headers.get("x-api-key"),
            }
        )

    return app


@dataclass
class Gateway:
    http: httpx.AsyncClient
    url: str
    app: FastAPI

    async def token(self, **form: str) -> httpx.Response:
        return await self.http.post("/oauth2/token", data=form)


@contextlib.asynccontextmanager
async def running_gateway(**settings: Any) -> AsyncIterator[Gateway]:
    async with serve(echo_upstream()) as upstream:
        options: dict[str, Any] = {
            "log_json": False,
            **{f"{name}_url": upstream for name in ("customer", "billing_adapter", "ticketing", "churn", "campaign")},
            **FAST_PASSWORDS,
            **settings,
        }
        app = create_app(Settings(**options))
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
            yield Gateway(http, url, app)


@pytest_asyncio.fixture
async def auth_gw() -> AsyncIterator[Gateway]:
    async with running_gateway() as gateway:
        yield gateway
