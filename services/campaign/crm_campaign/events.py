"""What the campaign service consumes: customer.profile and customer.segment (who the customers are, their tiers,
segments, consents and do-not-disturb), churn.score (risk bands) and ticketing.ticket (open complaints), all kept
in its own view of customers (`domain.projections`); and what it publishes: campaign.contact (a contact sent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import projections
from crm_kit.consumer import Subscription
from crm_kit.events import CloudEvent, new_event

if TYPE_CHECKING:
    from crm_campaign.domain.dispatch import Message

SOURCE = "/crm/campaign"
CONTACT_SENT = "campaign.contact.sent.v1"


async def on_event(session: AsyncSession, event: CloudEvent) -> None:
    await projections.apply(session, event.type, event.data)


def subscription(group: str) -> Subscription:
    return Subscription(group=group, handlers=dict.fromkeys(projections.CONSUMED, on_event))


def contact_sent(message: Message) -> CloudEvent:
    """触达: the contact as it went, keyed by the customer."""
    at = message.at.isoformat()
    return new_event(
        CONTACT_SENT,
        source=SOURCE,
        subject=message.customer_id,
        time=message.at,
        data={
            "contact_id": message.contact_id,
            "customer_id": message.customer_id,
            "occurred_at": at,
            "campaign_id": message.campaign.id,
            "campaign_name": message.campaign.name,
            "channel": message.channel,
            "offer_code": message.offer.code if message.offer else None,
            "offer_name": message.offer.name if message.offer else None,
        },
    )
