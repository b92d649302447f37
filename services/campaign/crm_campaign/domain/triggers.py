"""Triggered retention (事件触发营销): a running campaign with a trigger takes in a customer the moment the churn model
moves their band to the trigger's (e.g. into high risk) and their value tier is one it names, e.g. "churn band
moved to high and value tier high → retention offer by outbound call". The customer is assigned to treatment or
control by the campaign's hash like any other; the calendar's next tick (every half minute) contacts the treated
ones under the contact policy, so an outbound call lands within the day (a night's quiet hours at most).

A campaign's audience, if it has one, still applies: the trigger narrows it to the moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import audiences, campaigns, control
from crm_campaign.models import Assignment, Campaign, Customer
from crm_kit.db import utcnow


@dataclass(frozen=True)
class Trigger:
    churn_band: str
    value_tiers: tuple[str, ...]

    def fires(self, customer: Customer, before: str | None) -> bool:
        """The band moved to the trigger's (not merely stayed there) and the value tier is one it names."""
        return (
            customer.churn_band == self.churn_band
            and before != self.churn_band
            and (not self.value_tiers or customer.value_tier in self.value_tiers)
        )


def of(campaign: Campaign) -> Trigger | None:
    """The campaign's trigger as stored (the API checked it on the way in)."""
    stored = campaign.trigger
    if stored is None:
        return None
    return Trigger(stored["churn_band"], tuple(stored.get("value_tiers") or ()))


async def on_churn_band(session: AsyncSession, customer: Customer, before: str | None, at: datetime) -> None:
    """After a churn score moved the customer's band: join every running triggered campaign it fires."""
    if customer.erased_at is not None or customer.merged_into is not None:
        return
    running = await session.scalars(
        select(Campaign).where(
            Campaign.status == campaigns.RUNNING,
            Campaign.trigger.is_not(None),
            Campaign.starts_at <= at,
            Campaign.ends_at > at,
        )
    )
    for campaign in running:
        trigger = of(campaign)
        if trigger is None or not trigger.fires(customer, before):
            continue
        if await session.get(Assignment, (campaign.id, customer.customer_id)) is not None:
            continue
        audience = audiences.parse(campaign.audience)
        if not audience.empty and not await audiences.holds(session, audience, customer.customer_id, at):
            continue
        held_out = control.in_control(campaign.holdout_key, customer.customer_id, Decimal(campaign.holdout_share))
        if not held_out:
            campaign.treatment_joined_at = utcnow()  # someone new to contact: the next dispatch walks again
        session.add(
            Assignment(
                campaign_id=campaign.id,
                customer_id=customer.customer_id,
                group=campaigns.CONTROL if held_out else campaigns.TREATMENT,
                assigned_at=at,
            )
        )
