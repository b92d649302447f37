"""TMF621 Trouble Ticket: the troubleTicket resource: create, list, retrieve, merge-patch (which also moves the
status), delete."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.db import utcnow
from crm_kit.errors import InvalidInput, UnsupportedMediaType
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession, RuntimeDep
from crm_ticketing.api.access import ExistingTicket, Reader, TicketForDelete, TicketForUpdate, Writer, visible
from crm_ticketing.domain import representation, tickets
from crm_ticketing.domain.representation import TICKETS, ticket_resource
from crm_ticketing.domain.tickets import TicketFilter
from crm_ticketing.schemas.trouble_ticket import (
    CATEGORIES,
    CHANNELS,
    PRIORITIES,
    STATUSES,
    TICKET_TYPES,
    Instant,
    TroubleTicket,
    TroubleTicketCreate,
    TroubleTicketUpdate,
)
from crm_ticketing.settings import Settings

ONE = f"{TICKETS}/{{ticket_id}}"
router = APIRouter(tags=["TMF621 Trouble Ticket"], responses={401: {}, 403: {}})

ALWAYS = ("id", "href", "@type", "@baseType")
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
"""The ids this CRM keys by (customers, agents): a filter outside it cannot match, and is refused as such."""
MAX_OFFSET = 1_000_000_000
"""Past any real list, and within every database's integers (a larger one would fail in the driver)."""
FIELDS = set(TroubleTicket.model_json_schema(by_alias=True)["properties"])


async def clock() -> datetime:
    """The instant a request happens at. Every change and every SLA reading is made at it; tests override this
    dependency (`app.dependency_overrides[clock]`) to put a ticket through a weekend in a second."""
    return utcnow()


Now = Annotated[datetime, Depends(clock)]


async def parse_fields(
    fields: Annotated[
        str | None, Query(max_length=1000, description="Comma-separated attributes to return; id and href always come")
    ] = None,
) -> set[str] | None:
    if not fields:
        return None
    wanted = {f.strip() for f in fields.split(",") if f.strip()}
    unknown = wanted - FIELDS
    if unknown:
        raise InvalidInput(
            f"Unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(FIELDS))}", field="fields"
        )
    return wanted


Fields = Annotated[set[str] | None, Depends(parse_fields)]


def select_fields(resource: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    if fields is None:
        return resource
    return {k: v for k, v in resource.items() if k in fields or k in ALWAYS}


async def _one(session: AsyncSession, ticket_id: str, now: datetime) -> dict[str, Any]:
    [view] = await representation.load_views(session, [ticket_id])
    return ticket_resource(view, now)


# --- routes ------------------------------------------------------------------------------------------------------


@router.post(
    TICKETS,
    summary="Open a trouble ticket (工单受理): a complaint, a fault report or an inquiry",
    status_code=201,
    response_model=TroubleTicket,
    responses={409: {}, 422: {}},
)
async def create_ticket(
    body: TroubleTicketCreate, session: DbSession, rt: RuntimeDep, principal: Writer, now: Now
) -> JSONResponse:
    settings: Settings = rt.settings  # type: ignore[assignment]
    window = timedelta(hours=settings.duplicate_window_hours)
    ticket = await tickets.open_ticket(
        session, rt.contracts, body, actor=principal.subject, now=now, duplicate_window=window
    )
    return JSONResponse(
        await _one(session, ticket.id, now), status_code=201, headers={"Location": f"{TICKETS}/{ticket.id}"}
    )


def _any_of(raw: str | None, known: tuple[str, ...], name: str) -> tuple[str, ...]:
    """A comma-separated filter value: each must be one of `known`."""
    values = tuple(v.strip() for v in (raw or "").split(",") if v.strip())
    unknown = [v for v in values if v not in known]
    if unknown:
        raise InvalidInput(f"Unknown {name} {', '.join(unknown)}; known: {', '.join(known)}", field=name)
    return values


ListOf = Annotated[str | None, Query(max_length=200, description="One value, or several separated by commas")]


async def parse_filter(
    status: ListOf = None,
    priority: ListOf = None,
    category: ListOf = None,
    channel: ListOf = None,
    ticket_type: Annotated[str | None, Query(alias="ticketType", max_length=200)] = None,
    customer_id: Annotated[str | None, Query(alias="customerId", max_length=64, pattern=ID_PATTERN)] = None,
    party_id: Annotated[
        str | None,
        Query(
            alias="relatedParty.id", max_length=64, pattern=ID_PATTERN, description="The customer's id, as TMF names it"
        ),
    ] = None,
    queue: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
    assignee: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    created_after: Annotated[
        Instant | None, Query(alias="creationDate.gt", description="Opened after (RFC 3339 with offset)")
    ] = None,
    created_before: Annotated[
        Instant | None, Query(alias="creationDate.lt", description="Opened before (RFC 3339 with offset)")
    ] = None,
) -> TicketFilter:
    if customer_id and party_id and customer_id != party_id:
        raise InvalidInput("customerId and relatedParty.id name different customers", field="relatedParty.id")
    return TicketFilter(
        status=_any_of(status, STATUSES, "status"),
        priority=_any_of(priority, PRIORITIES, "priority"),
        category=_any_of(category, CATEGORIES, "category"),
        channel=_any_of(channel, CHANNELS, "channel"),
        ticket_type=_any_of(ticket_type, TICKET_TYPES, "ticketType"),
        customer_id=customer_id or party_id,
        queue=queue,
        assignee=assignee,
        created_after=created_after,
        created_before=created_before,
    )


async def parse_sort(
    sort: Annotated[
        str | None,
        Query(
            max_length=200,
            description=f"Comma-separated keys among {', '.join(tickets.SORTS)}; `-` descending. "
            f"Default {tickets.DEFAULT_SORT}",
        ),
    ] = None,
) -> list[Any]:
    return tickets.order_by(sort)


@router.get(TICKETS, summary="List trouble tickets", response_model=list[TroubleTicket], responses={422: {}})
async def list_tickets(
    session: DbSession,
    principal: Reader,
    now: Now,
    fields: Fields,
    where: Annotated[TicketFilter, Depends(parse_filter)],
    order: Annotated[list[Any], Depends(parse_sort)],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await tickets.list_tickets(
        session, [*where.clauses(), visible(principal)], order, offset=offset, limit=limit
    )
    items = [select_fields(ticket_resource(view, now), fields) for view in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@router.get(ONE, summary="Retrieve a trouble ticket", response_model=TroubleTicket, responses={404: {}})
async def retrieve_ticket(ticket: ExistingTicket, session: DbSession, fields: Fields, now: Now) -> JSONResponse:
    return JSONResponse(select_fields(await _one(session, ticket.id, now), fields))


PATCH_TYPES = ("application/merge-patch+json", "application/json")


async def merge_patch_body(request: Request, principal: Writer) -> None:
    """PATCH is a JSON merge-patch (RFC 7396); a JSON Patch (RFC 6902) or anything else is refused, not guessed at.
    After the caller is known (`principal`): who may not patch hears 401/403, not 415."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Send the patch as {' or '.join(PATCH_TYPES)}, not {media_type or 'no content type'}",
            field="Content-Type",
        )


@router.patch(
    ONE,
    summary="Update a trouble ticket (JSON merge-patch); a new status moves it through its lifecycle",
    response_model=TroubleTicket,
    dependencies=[Depends(merge_patch_body)],
    responses={404: {}, 409: {}, 415: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/TroubleTicketUpdate"}}
            }
        }
    },
)
async def patch_ticket(
    ticket: TicketForUpdate,
    body: TroubleTicketUpdate,
    session: DbSession,
    rt: RuntimeDep,
    principal: Writer,
    now: Now,
) -> JSONResponse:
    await tickets.patch_ticket(session, rt.contracts, ticket, body, actor=principal.subject, now=now)
    return JSONResponse(await _one(session, ticket.id, now))


@router.delete(
    ONE, summary="Delete a trouble ticket and its history (administrators)", status_code=204, responses={404: {}}
)
async def delete_ticket(ticket: TicketForDelete, session: DbSession) -> Response:
    await tickets.delete_ticket(session, ticket.id)
    return Response(status_code=204)
