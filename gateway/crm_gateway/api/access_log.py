"""The gateway's access log and its RED metrics per route and client: one line per request with the request id,
the caller, the route, the status and the latency, and counters an operator can chart per partner or role.

The caller is named in the log (who did it, for an audit) but the metrics are labelled by a bounded client label
(a partner, the BOSS source, or the caller's roles), so a province's thousands of agents do not each become a
time series."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_kit.auth import Principal
from crm_kit.observability import ROUTE_LABEL

log = logging.getLogger("crm_gateway.access")
CALLER = "caller"
CLIENT_LABEL = "client_label"
ANONYMOUS = "anonymous"

REQUESTS = Counter(
    "crm_gateway_client_requests_total", "Requests per client and route", ["client", "route", "method", "status"]
)
LATENCY = Histogram(
    "crm_gateway_client_request_seconds",
    "Latency per client and route, gateway included",
    ["client", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def client_label(principal: Principal | None, boss_source: str | None) -> str:
    """A partner by its id, the BOSS by its source, anyone else by their roles."""
    if principal is None:
        return f"boss:{boss_source}" if boss_source else ANONYMOUS
    if principal.partner_id:
        return f"partner:{principal.partner_id}"
    return "role:" + ("+".join(sorted(principal.roles)) or "none")


def name_caller(request: Request, principal: Principal | None) -> None:
    """Tell the access log who the admitted caller is."""
    request.state.caller = principal.subject if principal else None
    request.state.client_label = client_label(principal, request.headers.get("x-boss-source"))


class AccessLogMiddleware:
    """Pure ASGI, so it adds no task or buffering per request; it runs inside the request-id middleware, so its line
    carries the request's id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - start
            state = scope.get("state", {})
            route = state.get(ROUTE_LABEL) or getattr(scope.get("route"), "path", None) or "unmatched"
            client = state.get(CLIENT_LABEL, ANONYMOUS)
            REQUESTS.labels(client, route, scope["method"], str(status)).inc()
            LATENCY.labels(client, route).observe(seconds)
            log.info(
                "%s %s %s %.1f ms",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "latency_ms": round(seconds * 1000, 2),
                    "caller": state.get(CALLER),
                    "client": client,
                },
            )
