"""The gateway's composed 360 view of a customer (`GET /api/v1/customers/{id}/360`), the parts read concurrently from
the services that own them, with the caller's own credentials."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from crm_gateway.api.edge import admit
from crm_gateway.domain import compose
from crm_gateway.domain.routing import RouteTable
from crm_gateway.settings import Settings
from crm_kit.errors import problem
from crm_kit.presentation import JSONResponse

router = APIRouter(tags=["360 view"])
NOT_FORWARDED = frozenset({"accept", "accept-encoding", "content-type"})
"""About a body and encoding the parts' GETs do not share with the caller's request."""
CustomerId = Annotated[
    str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The BOSS customer id, e.g. C110000012345")
]


class PresentPart(BaseModel):
    status: Literal["present"]
    source: str = Field(description="The service the part was read from")
    data: Any = Field(description="The part as its service answers it, times in China Standard Time (+08:00)")


class MissingPart(BaseModel):
    status: Literal["missing"]
    source: str
    reason: Literal[compose.REASONS] = Field(  # type: ignore[valid-type]
        description="timeout: no answer within the part timeout; unavailable: no connection or a 5xx; "
        "unauthenticated: 401; forbidden: 403 (the caller's roles do not reach that service's data); not-found: "
        "that service does not know the customer; rejected: another 4xx; invalid-answer: not the JSON expected"
    )
    detail: str = Field(description="The service's own detail when it answered one")
    upstream_status: int | None = Field(description="The status the service answered, if it answered")


Part = PresentPart | MissingPart


class View360(BaseModel):
    """One customer as each owning service sees them. Every part but `customer` may be missing without failing the
    whole; `missing` names them."""

    customer_id: str
    composed_at: str = Field(description="When the parts were read, China Standard Time (+08:00)")
    complete: bool = Field(description="Every part is present")
    missing: list[str] = Field(description="The parts missing, each with its reason in the part")
    customer: PresentPart = Field(
        description="customer service: profile, accounts, lines, tiers, segments, 30-day usage; personal data masked "
        "unless the caller holds pii:read and sends X-Access-Reason"
    )
    billing: Part = Field(
        description="customer service (kept from billing.*): ARPU, spend trend, payment behaviour and outstanding, "
        "collection status, credit limit, and `last_invoice`: the latest billed month"
    )
    tickets: Part = Field(description="ticketing: {total, items}, the customer's TMF621 trouble tickets, newest first")
    churn_score: Part = Field(description="churn: the churn (离网) risk as of now, band and reasons")
    bad_debt_score: Part = Field(description="churn: the bad-debt (坏账) risk as of now, band and reasons")
    campaign_contacts: Part = Field(
        description="campaign: {total, items}, the customer's campaign contacts, newest first"
    )


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def upstreams(table: RouteTable) -> compose.Upstreams:
    bases = table.upstreams
    return compose.Upstreams(
        customer=bases["customer"], ticketing=bases["ticketing"], churn=bases["churn"], campaign=bases["campaign"]
    )


@router.get(
    "/api/v1/customers/{customer_id}/360",
    summary="The customer's 360 view composed from every service (客户360视图)",
    response_model=View360,
    responses={401: {}, 403: {}, 404: {}, 422: {}, 502: {}, 503: {}, 504: {}},
)
async def view_360(
    customer_id: CustomerId,
    request: Request,
    items: Annotated[int, Query(ge=1, le=100, description="Tickets and campaign contacts listed, at most")] = 20,
) -> JSONResponse:
    """Each part is read from its owner at the same time, with the caller's credentials, so each service applies its
    own checks. A part that is slow, down or refused is `{"status": "missing", "reason": …}` and the rest still
    come; the customer part is the exception: its 404 or 403 is the answer (503/504 when that service is down or
    slow), since without it there is no customer to compose around."""
    admitted = await admit(request, NOT_FORWARDED)
    settings = _settings(request)
    client: httpx.AsyncClient = request.app.state.http
    try:
        view, headers = await compose.compose_360(
            client,
            upstreams(request.app.state.routes),
            customer_id,
            [*admitted.headers, ("Accept", "application/json")],
            part_timeout=settings.compose_part_timeout_seconds,
            connect_timeout=settings.connect_timeout_seconds,
            items=items,
        )
    except compose.CustomerUnavailable as exc:
        return problem(
            exc.status, exc.slug, exc.title, exc.detail, request.url.path, headers=exc.headers or None, **exc.extra
        )
    return JSONResponse(view, headers={**headers, **admitted.rate_limit_headers})
