"""What the campaign service consumes: customer.profile and customer.segment (who the customers are, their tiers,
segments, consents and do-not-disturb), churn.score (risk bands) and ticketing.ticket (open complaints), all kept
in its own view of customers (`domain.projections`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import projections
from crm_kit.consumer import Subscription
from crm_kit.events import CloudEvent


async def on_event(session: AsyncSession, event: CloudEvent) -> None:
    await projections.apply(session, event.type, event.data)


def subscription(group: str) -> Subscription:
    return Subscription(group=group, handlers=dict.fromkeys(projections.CONSUMED, on_event))
