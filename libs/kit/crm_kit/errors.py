"""One error base, one problem+json shape (RFC 9457) for every failure path."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_kit.presentation import JSONResponse

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:telecom-crm:problem:"

log = logging.getLogger(__name__)


class CrmError(Exception):
    """A failure the caller should hear about, with a stable problem type."""

    status = 500
    slug = "internal"
    title = "Internal error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class InvalidInput(CrmError):
    status = 422
    slug = "invalid-input"
    title = "The request is not valid"


class MalformedBody(CrmError):
    status = 400
    slug = "malformed-body"
    title = "The request body cannot be parsed"


class Unauthenticated(CrmError):
    status = 401
    slug = "unauthenticated"
    title = "Credentials are missing or not valid"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": 'Bearer realm="telecom-crm"'}


class Forbidden(CrmError):
    status = 403
    slug = "forbidden"
    title = "The caller may not do this"


class NotFound(CrmError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(CrmError):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(CrmError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(CrmError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class UpstreamUnavailable(CrmError):
    status = 503
    slug = "upstream-unavailable"
    title = "A service behind the gateway is unavailable"


class ServiceUnavailable(CrmError):
    """The service is up but cannot take this request now (e.g. a backlog at its bound); `Retry-After` says when
    to try again, in seconds, and so does `retry_after_seconds` in the problem body."""

    status = 503
    slug = "service-unavailable"
    title = "The service cannot take this request now"

    def __init__(self, detail: str, *, retry_after_seconds: int, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, field=field, retry_after_seconds=retry_after_seconds, **extra)
        self.headers = {"Retry-After": str(retry_after_seconds)}  # type: ignore[misc]


class UpstreamTimeout(CrmError):
    status = 504
    slug = "upstream-timeout"
    title = "A service behind the gateway did not answer in time"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if field:
        body["field"] = field
    request_id = correlation_id.get()
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "records", 3, "msisdn")` → `records[3].msisdn`: the field as the caller wrote it."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or ".".join(str(p) for p in loc)


async def _crm_error(request: Request, exc: CrmError) -> JSONResponse:
    return problem(
        exc.status, exc.slug, exc.title, exc.detail, request.url.path, field=exc.field, headers=exc.headers, **exc.extra
    )


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": field_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        detail = next(e for e in exc.errors() if e["type"] == "json_invalid")
        return problem(
            400,
            MalformedBody.slug,
            MalformedBody.title,
            f"Body is not valid JSON: {detail.get('ctx', {}).get('error', detail['msg'])}",
            request.url.path,
        )
    first = errors[0] if errors else {"field": None, "message": "invalid"}
    return problem(
        422,
        InvalidInput.slug,
        InvalidInput.title,
        f"{first['field']}: {first['message']}",
        request.url.path,
        field=first["field"],
        errors=errors,
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == PayloadTooLarge.status:  # the body limit, raised from inside `receive`
        return problem(exc.status_code, PayloadTooLarge.slug, PayloadTooLarge.title, str(exc.detail), request.url.path)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
    return problem(
        exc.status_code,
        slug,
        str(exc.detail),
        str(exc.detail),
        request.url.path,
        headers=getattr(exc, "headers", None),
    )


def internal_error(path: str) -> JSONResponse:
    """The 500 answer: no internals, only the request id that finds them in the logs."""
    return problem(
        500, "internal", "Internal error", "The service failed; the request id identifies it in the logs.", path
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return internal_error(request.url.path)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details, as every failure of this API answers",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": f"{PROBLEM_BASE}<slug>: what kind of failure, stable"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What is wrong with this request, for a person"},
        "instance": {"type": "string", "description": "The path asked for"},
        "field": {"type": "string", "description": "The input member at fault, as the caller wrote it"},
        "request_id": {"type": "string", "description": "Finds the request in the logs"},
        "errors": {
            "type": "array",
            "description": "Every invalid member, on a 422",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def problem_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document as the handlers above answer: every 4xx and 5xx response as application/problem+json
    of one Problem schema (FastAPI documents its 422 as a JSON shape this API never sends)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = {PROBLEM_JSON: {"schema": reference}}
    return document


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers problem+json, and the OpenAPI document says so."""
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
