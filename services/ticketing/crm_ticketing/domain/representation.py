"""The TMF621 representation of a ticket: what the API answers with and what the hub POSTs to listeners, built in
one place so a listener sees the ticket exactly as a GET would show it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.presentation import SHANGHAI
from crm_ticketing.domain import clocks
from crm_ticketing.domain.sla import SlaClock
from crm_ticketing.models import SlaClockRow, Ticket, TicketNote, TicketStatusChange
from crm_ticketing.schemas.trouble_ticket import TroubleTicket

BASE = "/tmf-api/troubleTicket/v4"
TICKETS = f"{BASE}/troubleTicket"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
CUSTOMER_ROLE = "customer"
AGENT_ROLE = "agent"


@dataclass
class TicketView:
    """A ticket with what its representation shows beside it: status history, notes, SLA clocks by kind."""

    ticket: Ticket
    history: list[TicketStatusChange] = field(default_factory=list)
    notes: list[TicketNote] = field(default_factory=list)
    clocks: dict[str, SlaClock] = field(default_factory=dict)


async def load_views(session: AsyncSession, ids: Sequence[str]) -> list[TicketView]:
    """The tickets `ids` names, in that order, with their history and notes oldest first."""
    if not ids:
        return []
    views = {t.id: TicketView(t) for t in await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
    found = list(views)
    for change in await session.scalars(
        select(TicketStatusChange).where(TicketStatusChange.ticket_id.in_(found)).order_by(TicketStatusChange.seq)
    ):
        views[change.ticket_id].history.append(change)
    for note in await session.scalars(
        select(TicketNote).where(TicketNote.ticket_id.in_(found)).order_by(TicketNote.seq)
    ):
        views[note.ticket_id].notes.append(note)
    for row in await session.scalars(select(SlaClockRow).where(SlaClockRow.ticket_id.in_(found))):
        views[row.ticket_id].clocks[row.kind] = clocks.to_clock(row)
    return [views[i] for i in ids if i in views]


def local(moment: datetime | None) -> datetime | None:
    """Stored in UTC, shown in China Standard Time with its offset."""
    return moment.astimezone(SHANGHAI) if moment is not None else None


def ticket_resource(view: TicketView, now: datetime) -> dict[str, Any]:
    """The TMF621 representation: the customer and the assignee (role agent) among the related parties, the status
    history and notes oldest first, the SLA deadlines as they stand at `now`."""
    t = view.ticket
    customer = {
        "id": t.customer_id,
        "href": f"{CUSTOMERS}/{t.customer_id}",
        "name": t.customer_name,
        "role": CUSTOMER_ROLE,
        "@referredType": t.customer_referred_type,
    }
    parties = [customer, *t.related_parties]
    if t.assignee:
        parties.append({"id": t.assignee, "role": AGENT_ROLE, "@referredType": "Individual"})
    first = view.clocks[clocks.FIRST_RESPONSE]
    resolution = view.clocks[clocks.RESOLUTION]
    resource = TroubleTicket.model_validate(
        {
            "id": t.id,
            "href": f"{TICKETS}/{t.id}",
            "name": t.name,
            "description": t.description,
            "severity": t.severity,
            "priority": t.priority,
            "ticketType": t.ticket_type,
            "status": t.status,
            "statusChangeDate": local(t.status_change_date),
            "statusChangeReason": t.status_change_reason,
            "statusChange": [
                {"status": c.status, "changeDate": local(c.change_date), "changeReason": c.change_reason}
                for c in view.history
            ],
            "relatedParty": parties,
            "relatedEntity": t.related_entities,
            "note": [{"id": str(n.seq), "author": n.author, "date": local(n.date), "text": n.text} for n in view.notes],
            "attachment": t.attachments,
            "channel": {"id": t.channel, "name": t.channel_name},
            "creationDate": local(t.creation_date),
            "lastUpdate": local(t.last_update),
            "expectedResolutionDate": local(t.expected_resolution_date),
            "resolutionDate": local(t.resolution_date),
            "requestedResolutionDate": local(t.requested_resolution_date),
            "externalIdentifier": t.external_identifiers,
            "troubleTicketRelationship": (
                [{"id": t.duplicate_of, "href": f"{TICKETS}/{t.duplicate_of}", "relationshipType": "isDuplicateOf"}]
                if t.duplicate_of
                else []
            ),
            "category": t.category,
            "queue": t.queue,
            "assignee": t.assignee,
            "slaPolicyId": t.sla_policy_id,
            "firstResponseDueDate": local(clocks.deadline(first, now)),
            "resolutionDueDate": local(clocks.deadline(resolution, now)),
            "slaBreached": first.breached(now) or resolution.breached(now),
            "escalationLevel": t.escalation_level,
            "csat": (
                {"score": t.csat_score, "comment": t.csat_comment, "recordedAt": local(t.csat_at)}
                if t.csat_score is not None
                else None
            ),
        }
    )
    return resource.model_dump(mode="json", by_alias=True)
