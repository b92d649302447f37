"""TMF621 notifications: register a listener (`/hub`), read it back, remove it; the events it is then POSTed are
described as the registration's OpenAPI callback.

Administrators only: a listener hears of every ticket of every customer, which no partner role (scoped to its own
customers) may see; the operator registers a partner's or the regulator platform's endpoint for it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession
from crm_ticketing.api.access import Admin
from crm_ticketing.api.tickets import Now
from crm_ticketing.domain import hub
from crm_ticketing.domain.representation import BASE
from crm_ticketing.models import HubSubscription
from crm_ticketing.schemas.hub import (
    EventSubscription,
    EventSubscriptionInput,
    RegisteredEventSubscription,
    TroubleTicketEvent,
)

HUB = f"{BASE}/hub"
ONE = f"{HUB}/{{listener_id}}"
router = APIRouter(tags=["TMF621 Trouble Ticket"], responses={401: {}, 403: {}})

ListenerId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The listener's id")]

listener_calls = APIRouter()


@listener_calls.post(
    "{$request.body#/callback}",
    summary="A ticket event, POSTed to the listener until it answers 2xx",
    description=(
        "Headers: `X-Event-Id`, `X-Event-Type`, `X-Hub-Timestamp` (Unix seconds) and `X-Hub-Signature-256: "
        "sha256=<hex HMAC-SHA256 of '<X-Hub-Timestamp>.<body>' keyed with the listener's secret>`. Refuse a "
        "timestamp minutes away from your clock (a replay), and drop an `eventId` already seen (delivery is at "
        "least once). Retried with backoff on anything but 2xx."
    ),
)
def ticket_event(body: TroubleTicketEvent) -> None:
    """Documentation only: what the listener receives."""


def _shown(listener: HubSubscription) -> dict[str, str | None]:
    return EventSubscription(id=listener.id, callback=listener.callback, query=listener.query).model_dump(mode="json")


@router.post(
    HUB,
    summary="Register a listener for ticket events (事件订阅); the answer carries its signing secret, once",
    status_code=201,
    response_model=RegisteredEventSubscription,
    responses={422: {}},
    callbacks=listener_calls.routes,
)
async def register_listener(
    body: EventSubscriptionInput, session: DbSession, principal: Admin, now: Now
) -> JSONResponse:
    listener = await hub.register(session, body, actor=principal.subject, now=now)
    return JSONResponse(
        {**_shown(listener), "secret": listener.secret},
        status_code=201,
        headers={"Location": f"{HUB}/{listener.id}"},
    )


@router.get(ONE, summary="Retrieve a listener", response_model=EventSubscription, responses={404: {}})
async def retrieve_listener(listener_id: ListenerId, session: DbSession, principal: Admin) -> JSONResponse:
    return JSONResponse(_shown(await hub.find(session, listener_id)))


@router.delete(
    ONE, summary="Remove a listener; what it was still owed is dropped", status_code=204, responses={404: {}}
)
async def remove_listener(listener_id: ListenerId, session: DbSession, principal: Admin) -> Response:
    await hub.unregister(session, listener_id)
    return Response(status_code=204)
