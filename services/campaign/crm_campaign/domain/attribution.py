"""Attribution (效果归因): what the BOSS says customers did, credited to the campaigns whose audience they are in.

A response is an offer taken up within the campaign's response window after the customer was assigned: a plan
change to the plan a plan-upgrade offer names, an order of the add-on (叠加包) an offer names, or a recharge of at
least an offer's amount. Treatment and control
are judged alike, from their assignment (intent to treat): control customers who take the same plan on their own
are what the uplift is measured against. For retention campaigns, a customer left with no line open within 60 days
of assignment has churned. One response of each kind per customer and campaign: rates are shares of customers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from prometheus_client import Gauge
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign import events
from crm_campaign.domain import campaigns, deliveries, evaluation
from crm_campaign.domain.evaluation import Proportions
from crm_campaign.models import Assignment, Campaign, Contact, Offer, Response
from crm_kit.db import Database, insert_ignoring_duplicates
from crm_kit.events import Contracts
from crm_kit.outbox import stage
from crm_kit.periodic import repeat

ACCEPTED, CHURNED = "accepted", "churned"
RETENTION_DAYS = 60
"""Retention success: still with a line open this long after assignment (the churn model's horizon)."""
COUNTED = (campaigns.RUNNING, campaigns.COMPLETED)


class Terms(NamedTuple):
    """What of an offer attribution needs: what takes it up, and what a take-up is worth."""

    id: str
    plan_code: str | None
    min_recharge_fen: int | None
    addon_code: str | None
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
        Offer.addon_code,
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
    if event_type == ADDON_ORDERED:
        return offer.addon_code is not None and data["addon"]["code"] == offer.addon_code
    return offer.min_recharge_fen is not None and int(data["amount_fen"]) >= offer.min_recharge_fen


PLAN_CHANGED = "billing.subscription.plan_changed.v1"
ADDON_ORDERED = "billing.subscription.addon_ordered.v1"
RECHARGED = "billing.payment.recharged.v1"
RESPONSE_EVENTS = (PLAN_CHANGED, ADDON_ORDERED, RECHARGED)


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
    """A plan change, add-on order or recharge: a response to each campaign of the customer whose offer it takes up
    in time; a treated customer's is published on campaign.contact (办理)."""
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
    delivered: int
    responded: int
    value_fen: int
    churned: int


@dataclass(frozen=True)
class OfferFigures:
    """One offer's part: the treated contacted with it, and who took it up in each group, against the same group
    sizes as the campaign's rates (a customer contacted with one offer may take up another)."""

    offer_id: str
    code: str
    name: str
    contacted: int
    delivered: int
    treatment_responded: int
    control_responded: int
    value_fen: int
    cost_fen: int
    response: evaluation.Uplift | None
    incremental_revenue_fen: int | None
    roi: Decimal | None


@dataclass(frozen=True)
class Report:
    treatment: GroupFigures
    control: GroupFigures
    response: evaluation.Uplift | None
    retention: evaluation.Uplift | None
    incremental_revenue_fen: int | None
    cost_fen: int
    roi: Decimal | None
    offers: list[OfferFigures]


Tally = dict[tuple[str, str | None], tuple[int, int]]
"""(group, offer id) → two counts."""


async def _contacted(session: AsyncSession, campaign_id: str) -> Tally:
    """The campaign's sent contacts and those delivered, by their customer's group and offer, in one pass over
    them, the group looked up by the assignment's key for each contact. A join here is planned on statistics that
    may predate the launch, which think the campaign has next to no assignments: PostgreSQL then scans all of them
    for every contact."""
    group_of = (
        select(Assignment.group)
        .where(Assignment.campaign_id == Contact.campaign_id, Assignment.customer_id == Contact.customer_id)
        .correlate(Contact)
        .scalar_subquery()
    )
    delivered = case((Contact.delivery == deliveries.DELIVERED, 1), else_=0)
    sent = select(group_of.label("group"), Contact.offer_id, delivered.label("delivered")).where(
        Contact.campaign_id == campaign_id, Contact.status == deliveries.SENT
    )
    c = sent.subquery().c
    rows = await session.execute(
        select(c.group, c.offer_id, func.count(), func.coalesce(func.sum(c.delivered), 0)).group_by(c.group, c.offer_id)
    )
    return {(group, offer): (n, int(got)) for group, offer, n, got in rows.all()}


async def _accepted(session: AsyncSession, campaign_id: str) -> Tally:
    """Take-ups and their expected value by group and offer."""
    rows = await session.execute(
        select(Response.group, Response.offer_id, func.count(), func.coalesce(func.sum(Response.value_fen), 0))
        .where(Response.campaign_id == campaign_id, Response.kind == ACCEPTED)
        .group_by(Response.group, Response.offer_id)
    )
    return {(group, offer): (n, int(value)) for group, offer, n, value in rows.all()}


def _summed(tally: Tally, group: str, offer_id: str | None = None, *, every_offer: bool = False) -> tuple[int, int]:
    picked = [v for (g, o), v in tally.items() if g == group and (every_offer or o == offer_id)]
    return sum(a for a, _ in picked), sum(b for _, b in picked)


async def report(session: AsyncSession, campaign: Campaign) -> Report:
    """Treatment against control: the response uplift with its interval and test, incremental revenue at the
    offers' expected value, the cost of the offers the treated took, ROI, for the campaign and each offer; for
    retention, the churn rates."""
    customers = dict(
        (
            await session.execute(
                select(Assignment.group, func.count())
                .where(Assignment.campaign_id == campaign.id)
                .group_by(Assignment.group)
            )
        ).all()
    )
    churned = dict(
        (
            await session.execute(
                select(Response.group, func.count())
                .where(Response.campaign_id == campaign.id, Response.kind == CHURNED)
                .group_by(Response.group)
            )
        ).all()
    )
    contacted, accepted = await _contacted(session, campaign.id), await _accepted(session, campaign.id)
    groups = {
        group: GroupFigures(
            customers.get(group, 0),
            *_summed(contacted, group, every_offer=True),
            *_summed(accepted, group, every_offer=True),
            churned.get(group, 0),
        )
        for group in (campaigns.TREATMENT, campaigns.CONTROL)
    }
    treated, held_out = groups[campaigns.TREATMENT], groups[campaigns.CONTROL]
    comparable = treated.customers > 0 and held_out.customers > 0

    def card(
        treated_taken: int, treated_value: int, control_taken: int, control_value: int, cost_fen: int
    ) -> evaluation.Evaluation | None:
        if not comparable:
            return None
        taken = Proportions(treated.customers, treated_taken, held_out.customers, control_taken)
        return evaluation.evaluate(taken, treated_value, control_value, cost_fen)

    offers = []
    for offer in await campaigns.offers_of(session, campaign.id):
        treated_taken, treated_value = _summed(accepted, campaigns.TREATMENT, offer.id)
        control_taken, control_value = _summed(accepted, campaigns.CONTROL, offer.id)
        cost_fen = treated_taken * offer.cost_fen
        found = card(treated_taken, treated_value, control_taken, control_value, cost_fen)
        offers.append(
            OfferFigures(
                offer.id,
                offer.code,
                offer.name,
                *_summed(contacted, campaigns.TREATMENT, offer.id),
                treated_taken,
                control_taken,
                treated_value,
                cost_fen,
                found.response if found else None,
                found.incremental_revenue_fen if found else None,
                found.roi if found else None,
            )
        )
    cost_fen = sum(o.cost_fen for o in offers)
    whole = card(treated.responded, treated.value_fen, held_out.responded, held_out.value_fen, cost_fen)
    retention = None
    if comparable and campaign.objective == "retention":
        retention = evaluation.retention(
            Proportions(treated.customers, treated.churned, held_out.customers, held_out.churned)
        )
    return Report(
        treated,
        held_out,
        whole.response if whole else None,
        retention,
        whole.incremental_revenue_fen if whole else None,
        cost_fen,
        whole.roi if whole else None,
        offers,
    )


# --- Prometheus gauges -------------------------------------------------------------------------------------------

GROUP_CUSTOMERS = Gauge(
    "crm_campaign_group_customers",
    "Customers of each running campaign, by group (目标组/对照组)",
    ["campaign", "group"],
)
GROUP_RESPONDED = Gauge(
    "crm_campaign_group_responded",
    "Customers of each running campaign who took an offer up, by group",
    ["campaign", "group"],
)
RESPONSE_UPLIFT = Gauge(
    "crm_campaign_response_uplift",
    "Response rate of each running campaign's treatment group minus its control group's (响应提升), in rate points; "
    "NaN until both groups have customers",
    ["campaign"],
)
_shown: set[str] = set()
"""The campaigns the gauges carry now: one that stops running is taken off them."""


async def refresh_gauges(db: Database) -> None:
    """The report figures of every running campaign. Every replica sets the same figures: dashboards take max()
    across replicas."""
    async with db.sessions() as session:
        running = (await session.scalars(select(Campaign).where(Campaign.status == campaigns.RUNNING))).all()
        reports = {campaign.id: await report(session, campaign) for campaign in running}
    for gone in _shown - reports.keys():
        RESPONSE_UPLIFT.remove(gone)
        for group in (campaigns.TREATMENT, campaigns.CONTROL):
            GROUP_CUSTOMERS.remove(gone, group)
            GROUP_RESPONDED.remove(gone, group)
    for campaign_id, figures in reports.items():
        for group, counted in ((campaigns.TREATMENT, figures.treatment), (campaigns.CONTROL, figures.control)):
            GROUP_CUSTOMERS.labels(campaign_id, group).set(counted.customers)
            GROUP_RESPONDED.labels(campaign_id, group).set(counted.responded)
        RESPONSE_UPLIFT.labels(campaign_id).set(figures.response.uplift if figures.response else float("nan"))
    _shown.clear()
    _shown.update(reports)


async def run_gauges(db: Database, every: float) -> None:
    """Refresh the campaign gauges every `every` seconds until cancelled, the first time at once."""
    await repeat(lambda: refresh_gauges(db), every, what="refreshing the campaign gauges")
