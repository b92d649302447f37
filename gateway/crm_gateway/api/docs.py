"""The system's one OpenAPI document (`/openapi.json`) and its Swagger UI page (`/docs`), at the gateway.

The page loads Swagger UI's script and style from a CDN (FastAPI's default): a browser without internet access
shows a blank page, while `/openapi.json` itself needs nothing from outside."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from crm_gateway.domain.openapi import Documents, default_snapshots_dir
from crm_gateway.settings import Settings
from crm_kit.presentation import JSONResponse

router = APIRouter()
OPENAPI_PATH = "/openapi.json"


def documents(request: Request) -> Documents:
    """The app's documents, made on the first request (the settings and routes are the app's by then)."""
    state = request.app.state
    if getattr(state, "openapi_documents", None) is None:
        settings: Settings = state.settings
        folder = settings.openapi_snapshots_dir
        state.openapi_documents = Documents(
            state.routes,
            default_snapshots_dir() if folder is None else Path(folder),
            refresh_seconds=settings.openapi_refresh_seconds,
            fetch_timeout=settings.openapi_fetch_timeout_seconds,
        )
    return state.openapi_documents  # type: ignore[no-any-return]


@router.get(OPENAPI_PATH, include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    document = await documents(request).document(request.app.state.http, request.app.openapi())
    return JSONResponse(document)


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title="Telecom CRM API")
