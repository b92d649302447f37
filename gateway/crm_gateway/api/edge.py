"""What every route the gateway answers for a caller does first: admit the caller's credentials, count the request
against the caller's rate limit and quota, and build the headers an upstream is sent."""

from __future__ import annotations

from dataclasses import dataclass

from asgi_correlation_id import correlation_id
from fastapi import Request

from crm_gateway.api.access_log import name_caller
from crm_gateway.domain.access import authorise
from crm_gateway.domain.identity import Admission, Edge
from crm_gateway.domain.limits import RateLimiter, TooManyRequests
from crm_gateway.domain.routing import forwardable
from crm_kit.service import REQUEST_ID_HEADER

OWN_REQUEST_HEADERS = frozenset({"x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-api-key"})
"""Set by the gateway itself (or its server), never copied across: a copy would send them twice. An API key stays
at the edge: the services see the token it was exchanged for."""


@dataclass(frozen=True)
class Admitted:
    """A request let through: the headers its upstream is to see, and the rate-limit headers for the answer."""

    headers: list[tuple[str, str]]
    rate_limit_headers: dict[str, str]


def caller_key(request: Request, admission: Admission | None) -> str:
    """Whose bucket a request counts against: the authenticated client or user, the BOSS source of a signed push,
    else the caller's address (the token endpoint: a password guesser has no client id yet)."""
    if admission is not None and admission.principal is not None:
        return admission.principal.subject
    if admission is not None and request.headers.get("x-boss-source"):
        return f"boss:{request.headers['x-boss-source']}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


async def count(request: Request, admission: Admission | None) -> dict[str, str]:
    """The rate-limit headers of an admitted request; TooManyRequests (429) when its bucket or quota is empty."""
    limiter: RateLimiter = request.app.state.limiter
    roles = admission.principal.roles if admission is not None and admission.principal is not None else frozenset()
    decision = await limiter.check(caller_key(request, admission), request.method, request.url.path, roles)
    if not decision.allowed:
        raise TooManyRequests(decision)
    return decision.headers


async def admit(request: Request, dropped: frozenset[str] = frozenset()) -> Admitted:
    """Admit, authorise and count the request (401 without valid credentials, 403 without the scope its route
    needs, 429 over its limit) and build its upstream headers: the caller's, less `dropped`, with the token an API
    key was exchanged for, the gateway's request id and the client's address."""
    edge: Edge = request.app.state.edge
    admission = await edge.admit(
        authorization=request.headers.get("authorization"),
        api_key=request.headers.get("x-api-key"),
        path=request.url.path,
        boss_signature=request.headers.get("x-boss-signature"),
    )
    name_caller(request, admission.principal)
    # A signed BOSS push has no caller (the adapter checks its signature); a path nothing serves is the proxy's 404.
    if admission.principal is not None and request.app.state.routes.resolve(request.url.path) is not None:
        authorise(admission.principal, request.method, request.url.path)
    rate_limit_headers = await count(request, admission)
    replaced = OWN_REQUEST_HEADERS | dropped | ({"authorization"} if admission.authorization else set())
    headers = [(k, v) for k, v in forwardable(request.headers.items()) if k.lower() not in replaced]
    if admission.authorization:
        headers.append(("Authorization", admission.authorization))
    headers.append((REQUEST_ID_HEADER, correlation_id.get() or ""))
    if request.client:  # the server has already resolved the client through the proxies it trusts
        headers.append(("X-Forwarded-For", request.client.host))
    headers.append(("X-Forwarded-Proto", request.url.scheme))
    return Admitted(headers, rate_limit_headers)
