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
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign import events
from crm_campaign.domain import campaigns, evaluation
from crm_campaign.domain.evaluation import Proportions
from crm_campaign.models import Assignment, Campaign, Contact, Offer, Response
from crm_kit.db import insert_ignoring_duplicates
from crm_kit.events import Contracts
from crm_kit.outbox import stage

ACCEPTED, CHURNED = "accepted", "churned"
RETENTION_DAYS = 60
"""Retention success: still with a line open this long after assignment (the churn model's horizon)."""
COUNTED = (campaigns.RUNNING, campaigns.COMPLETED)


class Terms(NamedTuple):
    """What of an offer attribution needs: what takes it up, and what a take-up is worth."""

    id: str
    plan_code: str | None
    min_recharge_fen: int | None
    expected_value_fen: int


@dataclass(frozen=True)
class Assigned:
    """The customer's place in a running or completed campaign, with the campaign's offers (by code) and the
    contact it sent them, if it did."""

    campaign_id: str
    customer_id: str
    group: str
    assigned_at: datetime
    objective: str
    response_window_days: int
    contact_id: str | None
    offers: list[Terms]


_SENT_CONTACT = (
    select(Contact.id)
    .where(
        Contact.campaign_id == Assignment.campaign_id,
        Contact.customer_id == Assignment.customer_id,
        Contact.status == "sent",
    )
    .correlate(Assignment)
    .limit(1)
    .scalar_subquery()
)
"""Correlated to the assignment row: a look-up on the contact's unique key whatever the statistics say (matched
against the campaign as a constant, stale statistics that think it has next to no contacts make PostgreSQL scan
all of them by the campaign's status index)."""


_ASSIGNED = (
    select(
        Assignment.campaign_id,
        Assignment.group,
        Assignment.assigned_at,
        Campaign.objective,
        Campaign.response_window_days,
        _SENT_CONTACT,
        Offer.id,
        Offer.plan_code,
        Offer.min_recharge_fen,
        Offer.expected_value_fen,
    )
    .join(Campaign, Campaign.id == Assignment.campaign_id)
    .outerjoin(Offer, Offer.campaign_id == Campaign.id)
    .where(
        Assignment.customer_id == bindparam("customer_id"),
        Campaign.status.in_(COUNTED),
        Assignment.assigned_at <= bindparam("at", type_=Assignment.assigned_at.type),
    )
    .order_by(Assignment.campaign_id, Offer.code)
)


async def _assigned(session: AsyncSession, customer_id: str, at: datetime) -> list[Assigned]:
    """The customer's campaigns, their offers and contacts in one read: a billing event for a customer of no campaign
    (most of them) costs this one look-up by the assignment's customer index."""
    found: dict[str, Assigned] = {}
    conn = await session.connection()
    for row in await conn.execute(_ASSIGNED, {"customer_id": customer_id, "at": at}):
        campaign_id, group, assigned_at, objective, window, contact_id, offer_id, *terms = row
        assigned = found.get(campaign_id)
        if assigned is None:
            assigned = found[campaign_id] = Assigned(
                campaign_id, customer_id, group, assigned_at, objective, window, contact_id, []
            )
        if offer_id is not None:
            assigned.offers.append(Terms(offer_id, *terms))
    return list(found.values())


def _takes_up(offer: Terms, event_type: str, data: Mapping[str, Any]) -> bool:
    if event_type == PLAN_CHANGED:
        return offer.plan_code is not None and data["plan"]["code"] == offer.plan_code
    return offer.min_recharge_fen is not None and int(data["amount_fen"]) >= offer.min_recharge_fen


PLAN_CHANGED = "billing.subscription.plan_changed.v1"
RECHARGED = "billing.payment.recharged.v1"
RESPONSE_EVENTS = (PLAN_CHANGED, RECHARGED)


async def _record(
    session: AsyncSession, assigned: Assigned, kind: str, offer: Terms | None, at: datetime, event_id: str
) -> bool:
    """The response, unless the customer already gave one of this kind to this campaign: one statement on the
    response's unique key, safe against a concurrent writer too."""
    conn = await session.connection()
    written = await conn.scalar(
        insert_ignoring_duplicates(conn.dialect.name, Response.__table__)
        .values(
            id=campaigns.new_id("RSP"),
            campaign_id=assigned.campaign_id,
            customer_id=assigned.customer_id,
            group=assigned.group,
            kind=kind,
            offer_id=offer.id if offer else None,
            value_fen=offer.expected_value_fen if offer else 0,
            occurred_at=at,
            source_event_id=event_id,
        )
        .returning(Response.id)
    )
    return written is not None


async def on_billing(
    session: AsyncSession, contracts: Contracts, event_id: str, event_type: str, data: Mapping[str, Any], at: datetime
) -> None:
    """A plan change or recharge: a response to each campaign of the customer whose offer it takes up in time;
    a treated customer's is published on campaign.contact (办理)."""
    for assigned in await _assigned(session, data["customer_id"], at):
        if at > assigned.assigned_at + timedelta(days=assigned.response_window_days):
            continue
        offer = next((o for o in assigned.offers if _takes_up(o, event_type, data)), None)
        if offer is None or not await _record(session, assigned, ACCEPTED, offer, at, event_id):
            continue
        if assigned.contact_id is not None:
            event = events.contact_responded(
                assigned.contact_id, assigned.customer_id, assigned.campaign_id, ACCEPTED, at
            )
            await stage(session, contracts, [event])


async def on_lines_gone(session: AsyncSession, customer_id: str, event_id: str, at: datetime) -> None:
    """The customer has no line open: churned, for each retention campaign that assigned them in the 60 days
    before."""
    for assigned in await _assigned(session, customer_id, at):
        if assigned.objective == "retention" and at <= assigned.assigned_at + timedelta(days=RETENTION_DAYS):
            await _record(session, assigned, CHURNED, None, at, event_id)


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


async def _contacted(session: AsyncSession, campaign_id: str) -> dict[str, int]:
    """The campaign's sent contacts by their customer's group, in one pass over them, the group looked up by the
    assignment's key for each contact. A join here is planned on statistics that may predate the launch, which
    think the campaign has next to no assignments: PostgreSQL then scans all of them for every contact."""
    group_of = (
        select(Assignment.group)
        .where(Assignment.campaign_id == Contact.campaign_id, Assignment.customer_id == Contact.customer_id)
        .correlate(Contact)
        .scalar_subquery()
    )
    sent = select(group_of.label("group")).where(Contact.campaign_id == campaign_id, Contact.status == "sent")
    groups = sent.subquery()
    rows = await session.execute(select(groups.c.group, func.count()).group_by(groups.c.group))
    return {group: n for group, n in rows.all()}


async def _group(session: AsyncSession, campaign_id: str, group: str, contacted: int) -> GroupFigures:
    customers = await session.scalar(
        select(func.count()).where(Assignment.campaign_id == campaign_id, Assignment.group == group)
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
    return GroupFigures(customers or 0, contacted, accepted, int(value), by_kind.get(CHURNED, (0, 0))[0])


async def report(session: AsyncSession, campaign: Campaign) -> Report:
    """Treatment against control: the response uplift with its interval and test, incremental revenue at the
    offers' expected value, the cost of the offers the treated took, ROI; for retention, the churn rates."""
    contacted = await _contacted(session, campaign.id)
    treated = await _group(session, campaign.id, campaigns.TREATMENT, contacted.get(campaigns.TREATMENT, 0))
    held_out = await _group(session, campaign.id, campaigns.CONTROL, contacted.get(campaigns.CONTROL, 0))
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
