"""The TMF621 representation of a ticket: what the API answers with and what the hub POSTs to listeners, built in
one place so a listener sees the ticket exactly as a GET would show it.

`tickets` is imported as a module, its members looked up when used: tickets stages hub notifications, and the hub
builds them with this module, so the three import one another."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from crm_kit.presentation import SHANGHAI
from crm_ticketing.domain import clocks, tickets
from crm_ticketing.schemas.trouble_ticket import TroubleTicket

if TYPE_CHECKING:
    from crm_ticketing.domain.tickets import TicketView

BASE = "/tmf-api/troubleTicket/v4"
TICKETS = f"{BASE}/troubleTicket"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"


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
        "role": tickets.CUSTOMER_ROLE,
        "@referredType": t.customer_referred_type,
    }
    parties = [customer, *t.related_parties]
    if t.assignee:
        parties.append({"id": t.assignee, "role": tickets.AGENT_ROLE, "@referredType": "Individual"})
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
