"""TMF621 notifications: the listener registration (`/hub`) and the event POSTed to a registered listener."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, Field

from crm_kit.shapes import TmfModel
from crm_ticketing.schemas.trouble_ticket import Priority, TmfBody, TroubleTicket, WebUrl

EventType = Literal[
    "TroubleTicketCreateEvent",
    "TroubleTicketStatusChangeEvent",
    "TroubleTicketResolvedEvent",
    "TroubleTicketAttributeValueChangeEvent",
    "TroubleTicketDeleteEvent",
]
"""The TMF621 notifications this service sends: created (受理), status changed, resolved, changed, deleted."""
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


class EventSubscriptionInput(TmfBody):
    """A listener to call back: a partner's or the regulator platform's endpoint."""

    callback: WebUrl
    query: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        None, description="Which events, e.g. eventType=TroubleTicketStatusChangeEvent"
    )


class EventSubscription(TmfModel):
    id: str
    callback: str
    query: str | None = None


class RegisteredEventSubscription(EventSubscription):
    """The answer to a registration, the only one to carry the secret: the listener keeps it to verify our
    signatures (X-Hub-Signature-256), and it is never shown again."""

    secret: str = Field(description="HMAC-SHA256 key of X-Hub-Signature-256 over '<X-Hub-Timestamp>.<body>'")


class TroubleTicketEventPayload(TmfModel):
    trouble_ticket: TroubleTicket = Field(alias="troubleTicket")


class TroubleTicketEvent(TmfModel):
    """The TMF621 envelope around a ticket as it stood after the event. `timeOcurred` is spelled as TMF621 spells
    it, so listeners built from the specification find it."""

    event_id: str = Field(alias="eventId")
    event_time: AwareDatetime = Field(alias="eventTime")
    event_type: EventType = Field(alias="eventType")
    correlation_id: str | None = Field(None, alias="correlationId")
    domain: str | None = None
    title: str | None = None
    description: str | None = None
    priority: Priority | None = None
    time_ocurred: AwareDatetime | None = Field(None, alias="timeOcurred")
    field_path: str | None = Field(
        None, alias="fieldPath", description="TroubleTicketAttributeValueChangeEvent: the fields that changed"
    )
    event: TroubleTicketEventPayload
