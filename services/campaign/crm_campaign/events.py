"""What the campaign service consumes: customer.profile and customer.segment (who the customers are, their tiers,
segments, consents and do-not-disturb), churn.score (risk bands) and ticketing.ticket (open complaints), all kept
in its own view of customers (`domain.projections`); and what it publishes: campaign.contact (a contact sent)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import attribution, projections
from crm_kit.consumer import Handler, Subscription
from crm_kit.events import CloudEvent, Contracts, new_event, parse_rfc3339

if TYPE_CHECKING:
    from crm_campaign.domain.dispatch import Message

SOURCE = "/crm/campaign"
CONTACT_SENT = "campaign.contact.sent.v1"
CONTACT_RESPONDED = "campaign.contact.responded.v1"


def subscription(contracts: Contracts, group: str) -> Subscription:
    """The view of customers from customer.*, churn.score and ticketing.ticket; responses from the BOSS's plan
    changes, add-on orders and recharges, and churn (a customer left with no line open) from customer.profile."""

    async def on_event(session: AsyncSession, event: CloudEvent) -> None:
        await projections.apply(session, event.type, event.data)
        if event.type == projections.PROFILE_UPDATED and event.data.get("active_lines") == 0:
            at = parse_rfc3339(event.data["updated_at"])
            await attribution.on_lines_gone(session, event.data["customer_id"], event.id, at)

    async def on_billing(session: AsyncSession, event: CloudEvent) -> None:
        at = parse_rfc3339(event.data["occurred_at"])
        await attribution.on_billing(session, contracts, event.id, event.type, event.data, at)

    handlers: dict[str, Handler] = {
        **dict.fromkeys(projections.CONSUMED, on_event),
        **dict.fromkeys(attribution.RESPONSE_EVENTS, on_billing),
    }
    return Subscription(group=group, handlers=handlers)


def contact_sent(message: Message) -> CloudEvent:
    """触达: the contact as it went, keyed by the customer."""
    return new_event(
        CONTACT_SENT, source=SOURCE, subject=message.customer_id, time=message.at, data=contact_sent_data(message)
    )


def contact_sent_data(message: Message) -> dict[str, Any]:
    """The data of `contact_sent`, JSON-ready: what a batch's events differ by (`crm_kit.outbox.stage_many`)."""
    return {
        "contact_id": message.contact_id,
        "customer_id": message.customer_id,
        "occurred_at": message.at.isoformat(),
        "campaign_id": message.campaign.id,
        "campaign_name": message.campaign.name,
        "channel": message.channel,
        "offer_code": message.offer.code if message.offer else None,
        "offer_name": message.offer.name if message.offer else None,
    }


def contact_responded(contact_id: str, customer_id: str, campaign_id: str, response: str, at: datetime) -> CloudEvent:
    """办理: the treated customer took the contact's offer up."""
    return new_event(
        CONTACT_RESPONDED,
        source=SOURCE,
        subject=customer_id,
        time=at,
        data={
            "contact_id": contact_id,
            "customer_id": customer_id,
            "occurred_at": at.isoformat(),
            "campaign_id": campaign_id,
            "response": response,
        },
    )
