"""Attribution (效果归因): what the BOSS says customers did, credited to the campaigns whose audience they are in.

A response is an offer taken up within the campaign's response window after the customer was assigned: a plan
change to the plan a plan-upgrade offer names, or a recharge of at least an offer's amount. Treatment and control
are judged alike, from their assignment (intent to treat): control customers who take the same plan on their own
are what the uplift is measured against. For retention campaigns, a customer left with no line open within 60 days
of assignment has churned. One response of each kind per customer and campaign: rates are shares of customers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign import events
from crm_campaign.domain import campaigns, evaluation
from crm_campaign.domain.evaluation import Proportions
from crm_campaign.models import Assignment, Campaign, Contact, Offer, Response
from crm_kit.events import Contracts
from crm_kit.outbox import stage

ACCEPTED, CHURNED = "accepted", "churned"
RETENTION_DAYS = 60
"""Retention success: still with a line open this long after assignment (the churn model's horizon)."""
COUNTED = (campaigns.RUNNING, campaigns.COMPLETED)


async def _assigned(session: AsyncSession, customer_id: str, at: datetime) -> list[tuple[Assignment, Campaign]]:
    rows = await session.execute(
        select(Assignment, Campaign)
        .join(Campaign, Campaign.id == Assignment.campaign_id)
        .where(Assignment.customer_id == customer_id, Campaign.status.in_(COUNTED), Assignment.assigned_at <= at)
    )
    return [(a, c) for a, c in rows.all()]


def _takes_up(offer: Offer, event_type: str, data: Mapping[str, Any]) -> bool:
    if event_type == PLAN_CHANGED:
        return offer.plan_code is not None and data["plan"]["code"] == offer.plan_code
    return offer.min_recharge_fen is not None and int(data["amount_fen"]) >= offer.min_recharge_fen


PLAN_CHANGED = "billing.subscription.plan_changed.v1"
RECHARGED = "billing.payment.recharged.v1"
RESPONSE_EVENTS = (PLAN_CHANGED, RECHARGED)


async def _record(
    session: AsyncSession, assignment: Assignment, kind: str, offer: Offer | None, at: datetime, event_id: str
) -> bool:
    """The response, unless the customer already gave one of this kind to this campaign."""
    key = (Response.campaign_id == assignment.campaign_id, Response.customer_id == assignment.customer_id)
    if await session.scalar(select(Response.id).where(*key, Response.kind == kind)) is not None:
        return False
    session.add(
        Response(
            id=campaigns.new_id("RSP"),
            campaign_id=assignment.campaign_id,
            customer_id=assignment.customer_id,
            group=assignment.group,
            kind=kind,
            offer_id=offer.id if offer else None,
            value_fen=offer.expected_value_fen if offer else 0,
            occurred_at=at,
            source_event_id=event_id,
        )
    )
    return True


async def on_billing(
    session: AsyncSession, contracts: Contracts, event_id: str, event_type: str, data: Mapping[str, Any], at: datetime
) -> None:
    """A plan change or recharge: a response to each campaign of the customer whose offer it takes up in time;
    a treated customer's is published on campaign.contact (办理)."""
    for assignment, campaign in await _assigned(session, data["customer_id"], at):
        if at > assignment.assigned_at + timedelta(days=campaign.response_window_days):
            continue
        offers = await campaigns.offers_of(session, campaign.id)
        offer = next((o for o in offers if _takes_up(o, event_type, data)), None)
        if offer is None or not await _record(session, assignment, ACCEPTED, offer, at, event_id):
            continue
        contact = await session.scalar(
            select(Contact).where(
                Contact.campaign_id == campaign.id,
                Contact.customer_id == assignment.customer_id,
                Contact.status == "sent",
            )
        )
        if contact is not None:
            await stage(session, contracts, [events.contact_responded(contact, ACCEPTED, at)])


async def on_lines_gone(session: AsyncSession, customer_id: str, event_id: str, at: datetime) -> None:
    """The customer has no line open: churned, for each retention campaign that assigned them in the 60 days
    before."""
    for assignment, campaign in await _assigned(session, customer_id, at):
        if campaign.objective == "retention" and at <= assignment.assigned_at + timedelta(days=RETENTION_DAYS):
            await _record(session, assignment, CHURNED, None, at, event_id)


# --- the report ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFigures:
    customers: int
    contacted: int
    responded: int
    value_fen: int
    churned: int


@dataclass(frozen=True)
class Report:
    treatment: GroupFigures
    control: GroupFigures
    response: evaluation.Uplift | None
    retention: evaluation.Uplift | None
    incremental_revenue_fen: int | None
    cost_fen: int
    roi: Decimal | None


async def _group(session: AsyncSession, campaign_id: str, group: str) -> GroupFigures:
    customers = await session.scalar(
        select(func.count()).where(Assignment.campaign_id == campaign_id, Assignment.group == group)
    )
    contacted = await session.scalar(
        select(func.count())
        .select_from(Contact)
        .join(
            Assignment,
            (Assignment.campaign_id == Contact.campaign_id) & (Assignment.customer_id == Contact.customer_id),
        )
        .where(Contact.campaign_id == campaign_id, Contact.status == "sent", Assignment.group == group)
    )
    by_kind = {
        kind: (n, value)
        for kind, n, value in (
            await session.execute(
                select(Response.kind, func.count(), func.coalesce(func.sum(Response.value_fen), 0))
                .where(Response.campaign_id == campaign_id, Response.group == group)
                .group_by(Response.kind)
            )
        ).all()
    }
    accepted, value = by_kind.get(ACCEPTED, (0, 0))
    return GroupFigures(customers or 0, contacted or 0, accepted, int(value), by_kind.get(CHURNED, (0, 0))[0])


async def report(session: AsyncSession, campaign: Campaign) -> Report:
    """Treatment against control: the response uplift with its interval and test, incremental revenue at the
    offers' expected value, the cost of the offers the treated took, ROI; for retention, the churn rates."""
    treated = await _group(session, campaign.id, campaigns.TREATMENT)
    held_out = await _group(session, campaign.id, campaigns.CONTROL)
    cost = await session.scalar(
        select(func.coalesce(func.sum(Offer.cost_fen), 0))
        .select_from(Response)
        .join(Offer, Offer.id == Response.offer_id)
        .where(Response.campaign_id == campaign.id, Response.group == campaigns.TREATMENT)
    )
    cost_fen = int(cost or 0)
    comparable = treated.customers > 0 and held_out.customers > 0
    response = retention = revenue = roi = None
    if comparable:
        card = evaluation.evaluate(
            Proportions(treated.customers, treated.responded, held_out.customers, held_out.responded),
            treated.value_fen,
            held_out.value_fen,
            cost_fen,
        )
        response, revenue, roi = card.response, card.incremental_revenue_fen, card.roi
        if campaign.objective == "retention":
            retention = evaluation.retention(
                Proportions(treated.customers, treated.churned, held_out.customers, held_out.churned)
            )
    return Report(treated, held_out, response, retention, revenue, cost_fen, roi)
