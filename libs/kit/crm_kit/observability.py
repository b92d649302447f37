"""Prometheus metrics, JSON logs with request/correlation id, and the per-route RED middleware."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from functools import cache

from asgi_correlation_id import CorrelationIdFilter
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class ServiceMetrics:
    """Metrics named `crm_<service>_…`; one set per service per process."""

    requests: Counter
    latency: Histogram
    outbox_backlog: Gauge
    outbox_oldest_age: Gauge
    outbox_published: Counter
    consumed: Counter
    consumer_lag: Gauge
    dlq: Counter


@cache
def service_metrics(service: str) -> ServiceMetrics:
    p = f"crm_{service.replace('-', '_')}"
    return ServiceMetrics(
        requests=Counter(f"{p}_http_requests_total", "HTTP requests", ["method", "route", "status"]),
        latency=Histogram(
            f"{p}_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        outbox_backlog=Gauge(f"{p}_outbox_backlog", "Outbox rows not yet published"),
        outbox_oldest_age=Gauge(f"{p}_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row"),
        outbox_published=Counter(f"{p}_outbox_published_total", "Events published from the outbox", ["topic"]),
        consumed=Counter(f"{p}_events_consumed_total", "Events consumed", ["topic", "type", "outcome"]),
        consumer_lag=Gauge(f"{p}_consumer_lag", "Records behind the end of the partition", ["topic", "partition"]),
        dlq=Counter(f"{p}_dlq_total", "Records sent to a dead-letter topic", ["topic", "reason"]),
    )


ROUTE_LABEL = "metrics_route"


class MetricsMiddleware:
    """RED per route template (not per raw path, which would explode the label space)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = scope.get("route")
            # A handler may name its route better than its template (the gateway's catch-all names the upstream).
            label = scope.get("state", {}).get(ROUTE_LABEL)
            template = label or getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(CorrelationIdFilter(default_value="-"))
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "correlation_id": "request_id"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
