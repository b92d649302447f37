"""The gateway's routes: its own health and metrics, then everything else proxied by path."""

from __future__ import annotations

import asyncio

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


@router.api_route("/{path:path}", methods=METHODS, include_in_schema=False)
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
    client = _client(request)
    upstream_request = client.build_request(
        request.method,
        httpx.URL(target),
        headers=headers,
        content=request.stream() if route.streams_body else await request.body(),
        timeout=httpx.Timeout(route.timeout_seconds, connect=request.app.state.connect_timeout),
    )
    try:
        upstream = await _resilience(request).send(client, upstream_request, route.upstream)
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise _unavailable(route.upstream, exc) from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(
            f"The {route.upstream} service did not answer within {route.timeout_seconds}s", upstream=route.upstream
        ) from exc
    except httpx.TransportError as exc:  # refused, reset, closed without an answer
        raise _unavailable(route.upstream, exc) from exc
    response_headers = [
        (k, v) for k, v in forwardable(upstream.headers.multi_items()) if k.lower() not in OWN_RESPONSE_HEADERS
    ]
    response = StreamingResponse(
        upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
    )
    for k, v in response_headers:
        response.headers.append(k, v)
    response.headers.update(admitted.rate_limit_headers)
    return response


def _unavailable(upstream: str, exc: Exception) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"The {upstream} service is unavailable ({type(exc).__name__})", upstream=upstream)
