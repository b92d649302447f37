"""The gateway's routes: its own health and metrics, then everything else proxied by path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from crm_gateway.api.edge import admit
from crm_gateway.domain.resilience import Resilience
from crm_gateway.domain.routing import RouteTable, forwardable
from crm_kit.errors import NotFound, UpstreamTimeout, UpstreamUnavailable, problem
from crm_kit.observability import ROUTE_LABEL
from crm_kit.presentation import JSONResponse
from crm_kit.service import metrics_endpoint

router = APIRouter()
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
OWN_RESPONSE_HEADERS = frozenset({"x-request-id", "server", "date"})
WHOLE_ANSWER_BYTES = 256 * 1024
"""An answer up to this size (by its Content-Length) is read whole and sent on in one piece: streaming it costs the
gateway a task and a round of ASGI messages per chunk, a third of its CPU on a typical read, and a read answer is
a few kilobytes. Larger or unsized answers (an export, a file) stream through."""


def _table(request: Request) -> RouteTable:
    return request.app.state.routes  # type: ignore[no-any-return]


def _client(request: Request) -> httpx.AsyncClient:
    return request.app.state.http  # type: ignore[no-any-return]


def _resilience(request: Request) -> Resilience:
    return request.app.state.resilience  # type: ignore[no-any-return]


@router.get("/health/live", tags=["operations"], summary="The gateway process is up")
async def live() -> dict[str, str]:
    return {"status": "up"}


@router.get("/health/ready", tags=["operations"], summary="Every upstream is ready", responses={503: {}})
async def ready(request: Request) -> JSONResponse:
    client = _client(request)
    upstreams = _table(request).upstreams

    async def check(base: str) -> str:
        try:
            r = await client.get(f"{base}/health/ready", timeout=2.0)
            return "up" if r.status_code == 200 else f"not ready ({r.status_code})"
        except httpx.HTTPError as exc:
            return f"down: {type(exc).__name__}"

    results = await asyncio.gather(*(check(base) for base in upstreams.values()))
    checks = dict(zip(upstreams, results, strict=True))
    if all(v == "up" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    detail = ", ".join(f"{k} {v}" for k, v in checks.items() if v != "up")
    return problem(503, "not-ready", "Not ready", detail, "/health/ready", checks=checks)


router.add_api_route(
    "/metrics", metrics_endpoint, tags=["operations"], summary="Prometheus metrics", response_class=Response
)


async def proxy(request: Request, path: str) -> Response:
    route = _table(request).resolve(request.url.path)
    setattr(request.state, ROUTE_LABEL, f"{route.prefix}* → {route.upstream}" if route else "unrouted")
    admitted = await admit(request)
    if route is None:
        raise NotFound(f"No service serves {request.url.path}", field="path")
    # The path and query exactly as the client sent them: decoding and re-encoding would change `%2F`.
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    target = route.base_url + raw_path.decode("latin-1")
    if request.scope.get("query_string"):
        target += "?" + request.scope["query_string"].decode("latin-1")
    headers = admitted.headers
    if route.connection_per_request:
        headers.append(("Connection", "close"))
    body = _ClientBody(request) if route.streams_body else None
    upstream_request = httpx.Request(
        request.method,
        httpx.URL(target),
        headers=headers,
        content=body if body is not None else await request.body(),
        extensions={"timeout": route.timeouts(request.app.state.connect_timeout)},
    )
    try:
        upstream = await _resilience(request).send(request.app.state.upstream, upstream_request, route.upstream)
    except httpx.HTTPError as exc:
        if body is not None and body.failure is not None:
            raise body.failure from exc  # the client's body was refused (too large) or cut off, not the upstream
        raise _upstream_failure(route.upstream, route.timeout_seconds, exc) from exc
    response_headers = [
        (k, v) for k, v in forwardable(upstream.headers.multi_items()) if k.lower() not in OWN_RESPONSE_HEADERS
    ]
    response: Response
    if _small(upstream, request.method):
        try:
            answer = b"".join([chunk async for chunk in upstream.aiter_raw()])  # as sent: still compressed, if so
        except httpx.HTTPError as exc:
            raise _upstream_failure(route.upstream, route.timeout_seconds, exc) from exc
        finally:
            await upstream.aclose()
        response = Response(answer, status_code=upstream.status_code)
    else:
        response = StreamingResponse(
            upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
        )
    for k, v in response_headers:
        response.headers.append(k, v)
    response.headers.update(admitted.rate_limit_headers)
    return response


router.add_api_route("/{path:path}", proxy, methods=METHODS, include_in_schema=False)  # unrouted paths: 401 or 404


def upstream_routes(table: RouteTable) -> APIRouter:
    """One route per upstream prefix, for the app to put before its own routes (except the 360 view, which lies
    under a customer prefix): a proxied request, nearly every request, then matches within a few patterns
    instead of after every admin and auth route, which cost a tenth of the gateway's CPU a request."""
    routes = APIRouter()
    for route in table.routes:
        routes.add_api_route(route.prefix.rstrip("/") + "{path:path}", proxy, methods=METHODS, include_in_schema=False)
    return routes


def _small(upstream: httpx.Response, method: str) -> bool:
    """A sized answer small enough to read whole (a HEAD answer has no body to read: its length is the GET's)."""
    length = upstream.headers.get("content-length", "")
    return method != "HEAD" and length.isdigit() and int(length) <= WHOLE_ANSWER_BYTES


def _upstream_failure(upstream: str, timeout_seconds: float, exc: httpx.HTTPError) -> Exception:
    """A 503 when the upstream cannot be reached (refused, reset, no free connection in time), a 504 when it was
    reached and did not answer in time."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return UpstreamTimeout(f"The {upstream} service did not answer within {timeout_seconds}s", upstream=upstream)
    return UpstreamUnavailable(f"The {upstream} service is unavailable ({type(exc).__name__})", upstream=upstream)


class _ClientBody:
    """The client's body passed on as it arrives, keeping what went wrong reading it (over the size limit, the
    client gone): the upstream client reports that only as its own transport error, which would blame the
    upstream with a 503."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.failure: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.request.stream():
                yield chunk
        except Exception as exc:
            self.failure = exc
            raise
