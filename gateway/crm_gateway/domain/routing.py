"""Routing: which upstream serves a path, and with what timeout."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from crm_gateway.settings import Settings

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass(frozen=True)
class Route:
    prefix: str
    upstream: str
    base_url: str
    timeout_seconds: float
    streams_body: bool = False
    """Pass the request body on as it arrives (a BOSS file of gigabytes) instead of reading it first."""
    connection_per_request: bool = False
    """Close the upstream connection after each request. For BOSS pushes, megabytes and a quarter-second of work
    each: a kept-alive connection would pin every push to the worker (or replica) that happened to accept it,
    while a fresh one goes to whichever worker is free to accept, so a feed spreads over all of them. The
    connect costs a fraction of a millisecond a push."""

    def timeouts(self, connect_seconds: float) -> dict[str, float]:
        """As httpx's request extension wants them: connect, then each read, write and wait for a pooled connection."""
        return httpx.Timeout(self.timeout_seconds, connect=connect_seconds).as_dict()  # type: ignore[return-value]

    def matches(self, path: str) -> bool:
        """Whole path segments only: `/api/v1/customers` serves `/api/v1/customers/C1`, not `/api/v1/customersx`."""
        base = self.prefix.rstrip("/")
        return path == base or path.startswith(base + "/")


BOSS_PUSHES = "/boss/v1/events"
"""Where the BOSS pushes its batches: each on an upstream connection of its own (the quarantine and job reads
under `/boss/v1/` keep theirs)."""

BOSS_FILES = "/boss/v1/imports"
"""Where BOSS batch files are uploaded: streamed through, with a body limit of their own."""


class RouteTable:
    """Longest prefix wins, so a specific route can sit beside a general one."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)

    @classmethod
    def from_settings(cls, s: Settings) -> RouteTable:
        return cls(
            [
                Route("/boss/v1/", "billing-adapter", s.billing_adapter_url, s.boss_timeout_seconds),
                Route(
                    BOSS_PUSHES,
                    "billing-adapter",
                    s.billing_adapter_url,
                    s.boss_timeout_seconds,
                    connection_per_request=True,
                ),
                Route(
                    BOSS_FILES,
                    "billing-adapter",
                    s.billing_adapter_url,
                    s.boss_upload_timeout_seconds,
                    streams_body=True,
                ),
                Route("/tmf-api/customerManagement/v4/", "customer", s.customer_url, s.timeout_seconds),
                Route("/tmf-api/troubleTicket/v4/", "ticketing", s.ticketing_url, s.timeout_seconds),
                Route("/churn/v1/", "churn", s.churn_url, s.timeout_seconds),
                Route("/campaign/v1/", "campaign", s.campaign_url, s.timeout_seconds),
                *(
                    Route(prefix, "ticketing", s.ticketing_url, s.timeout_seconds)
                    for prefix in ("/api/v1/tickets", "/api/v1/queues", "/api/v1/knowledge")
                ),
                *(
                    Route(prefix, "customer", s.customer_url, s.timeout_seconds)
                    for prefix in (
                        "/api/v1/customers",
                        "/api/v1/accounts",
                        "/api/v1/segments",
                        "/api/v1/key-accounts",
                        "/api/v1/privacy",
                    )
                ),
            ]
        )

    def resolve(self, path: str) -> Route | None:
        return next((r for r in self.routes if r.matches(path)), None)

    @property
    def upstreams(self) -> dict[str, str]:
        return {r.upstream: r.base_url for r in self.routes}


def forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
