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
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
