"""Projections of the other services' events: tickets (工单), risk scores (离网/坏账预警) and campaign contacts
(营销触达), each kept at the newest state it was told, plus the customer's facts derived from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain.lines import ensure_customer
from crm_customer.domain.timeline import add_to_timeline
from crm_customer.models import (
    CampaignContactView,
    Customer,
    CustomerMetrics,
    RiskScore,
    Segment,
    SegmentMember,
    Subscription,
    TicketView,
    TimelineEntry,
)
from crm_kit.db import utcnow
from crm_kit.events import parse_rfc3339

TICKET_CREATED = "ticketing.ticket.created.v1"
TICKET_STATE_CHANGED = "ticketing.ticket.state_changed.v1"
TICKET_CSAT_RECORDED = "ticketing.ticket.csat_recorded.v1"
SCORE_COMPUTED = "churn.score.computed.v1"
CONTACT_SENT = "campaign.contact.sent.v1"
CONTACT_RESPONDED = "campaign.contact.responded.v1"
PROJECTION_EVENTS = [
    TICKET_CREATED,
    TICKET_STATE_CHANGED,
    TICKET_CSAT_RECORDED,
    SCORE_COMPUTED,
    CONTACT_SENT,
    CONTACT_RESPONDED,
]

OPEN_STATES = ("acknowledged", "inProgress", "pending", "held")
"""TMF621 states of a ticket still being worked on; resolved, closed, cancelled and rejected are done."""
NO_STATE_YET = datetime(1970, 1, 1, tzinfo=UTC)
"""last_event_at of a ticket known only from its survey: any state change is newer."""
SCORE_QUANTUM = Decimal("0.0001")

TICKET_TYPE_TERMS = {"complaint": "投诉", "trouble": "故障", "inquiry": "咨询"}
TICKET_STATE_TERMS = {
    "acknowledged": "已受理",
    "inProgress": "处理中",
    "pending": "待客户反馈",
    "held": "挂起",
    "resolved": "已解决",
    "closed": "已关闭",
    "cancelled": "已撤销",
    "rejected": "已驳回",
}
MODEL_TERMS = {"churn": "离网", "bad_debt": "坏账"}
RESPONSE_TERMS = {"accepted": "接受", "declined": "拒绝", "clicked": "点击", "opted_out": "退订"}


def parse_score(value: Any) -> Decimal:
    """A score as sent (number or decimal string) → Decimal with 4 places, without passing through float math."""
    return Decimal(str(value)).quantize(SCORE_QUANTUM, rounding=ROUND_HALF_UP)


def summary_line(event_type: str, data: dict[str, Any]) -> str:
    """A short English summary of the event for the timeline, with the Chinese term where it helps."""
    if event_type == TICKET_CREATED:
        kind = data["ticket_type"]
        return (
            f"Ticket {data['ticket_id']} opened: {kind} ({TICKET_TYPE_TERMS[kind]}), {data['priority']} priority, "
            f"{data['category']}: {data['title']}"
        )
    if event_type == TICKET_STATE_CHANGED:
        to = data["to_state"]
        text = f"Ticket {data['ticket_id']} {data['from_state']} → {to} ({TICKET_STATE_TERMS[to]})"
        return text + (f": {data['reason']}" if data.get("reason") else "")
    if event_type == TICKET_CSAT_RECORDED:
        text = f"Ticket {data['ticket_id']} rated {data['score']}/5 (满意度)"
        return text + (f": {data['comment']}" if data.get("comment") else "")
    if event_type == SCORE_COMPUTED:
        kind = data["model_kind"]
        return (
            f"{kind.replace('_', '-').capitalize()} risk ({MODEL_TERMS[kind]}) scored {parse_score(data['score'])}, "
            f"{data['risk_band']} band, model {data['model_version']}"
        )
    if event_type == CONTACT_SENT:
        text = f"Campaign {data['campaign_name']} (营销) contacted by {data['channel']}"
        return text + (f": {data['offer_name']}" if data.get("offer_name") else "")
    if event_type == CONTACT_RESPONDED:
        response = data["response"]
        return f"Campaign {data['campaign_id']} contact {data['contact_id']}: {response} ({RESPONSE_TERMS[response]})"
    return event_type


@dataclass
class ProjectionChange:
    customer: Customer
    created: bool


async def apply_projection_event(
    session: AsyncSession, event_id: str, event_type: str, data: dict[str, Any]
) -> ProjectionChange:
    """Apply one ticketing.ticket.*, churn.score.* or campaign.contact.* event: its projection, the customer's
    facts and the timeline. An unknown customer gets a placeholder, as billing events give it."""
    now = utcnow()
    occurred = parse_rfc3339(data["occurred_at"])
    customer, created = await ensure_customer(session, data["customer_id"], now)
    await session.flush()
    await customer_metrics(session, customer.id, now)
    await _PROJECTORS[event_type](session, customer.id, data, occurred, now)
    await add_to_timeline(
        session,
        customer.id,
        occurred_at=occurred,
        kind=_KINDS[event_type.split(".")[0]],
        event_type=event_type,
        summary=summary_line(event_type, data),
        source_event_id=event_id,
    )
    return ProjectionChange(customer, created)


async def customer_metrics(session: AsyncSession, customer_id: str, now: datetime) -> CustomerMetrics:
    """The customer's facts row, created (all counts zero, nothing known) when it is missing."""
    metrics = await session.get(CustomerMetrics, customer_id)
    if metrics is None:
        metrics = CustomerMetrics(
            customer_id=customer_id,
            outstanding_fen=0,
            overdue_invoices=0,
            active_lines=0,
            total_lines=0,
            voice_minutes_30d=0,
            sms_30d=0,
            data_mb_30d=0,
            days_active_30d=0,
            open_tickets=0,
            updated_at=now,
        )
        session.add(metrics)
    return metrics


# --- tickets (工单) ------------------------------------------------------------------------------------------------


async def _ticket(session: AsyncSession, customer_id: str, ticket_id: str, state: str, at: datetime) -> TicketView:
    ticket = await session.get(TicketView, ticket_id)
    if ticket is None:
        ticket = TicketView(ticket_id=ticket_id, customer_id=customer_id, state=state, last_event_at=at)
        session.add(ticket)
    return ticket


async def _ticket_created(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, now: datetime
) -> None:
    """What the ticket is never changes, so it is filled in whenever it arrives; the state only if newest."""
    ticket = await _ticket(session, customer_id, data["ticket_id"], data["state"], occurred)
    ticket.customer_id = customer_id
    ticket.ticket_type = data["ticket_type"]
    ticket.category = data["category"]
    ticket.title = data["title"]
    ticket.priority = data["priority"]
    ticket.sla_due_at = parse_rfc3339(data["sla_due_at"]) if data["sla_due_at"] else None
    ticket.opened_at = occurred
    if occurred >= ticket.last_event_at:
        ticket.state = data["state"]
        ticket.last_event_at = occurred
    await _refresh_open_tickets(session, customer_id, now)


async def _ticket_state_changed(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, now: datetime
) -> None:
    ticket = await _ticket(session, customer_id, data["ticket_id"], data["to_state"], NO_STATE_YET)
    if occurred < ticket.last_event_at:
        return  # a late copy of an older change
    ticket.state = data["to_state"]
    ticket.last_event_at = occurred
    if ticket.state == "resolved" or (ticket.state == "closed" and ticket.resolved_at is None):
        ticket.resolved_at = occurred
    elif ticket.state in OPEN_STATES:
        ticket.resolved_at = None  # reopened
    await _refresh_open_tickets(session, customer_id, now)


async def _ticket_csat_recorded(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, now: datetime
) -> None:
    """The survey rates the ticket; the customer's last CSAT is the newest survey of any of their tickets."""
    ticket = await _ticket(session, customer_id, data["ticket_id"], "resolved", NO_STATE_YET)
    ticket.csat_score = data["score"]
    newest = await session.scalar(
        select(func.max(TimelineEntry.occurred_at)).where(
            TimelineEntry.customer_id == customer_id, TimelineEntry.type == TICKET_CSAT_RECORDED
        )
    )
    if newest is None or occurred >= newest:
        metrics = await customer_metrics(session, customer_id, now)
        metrics.last_csat = data["score"]
        metrics.updated_at = now
    await _refresh_open_tickets(session, customer_id, now)


async def _refresh_open_tickets(session: AsyncSession, customer_id: str, now: datetime) -> None:
    await session.flush()
    count = await session.scalar(
        select(func.count())
        .select_from(TicketView)
        .where(TicketView.customer_id == customer_id, TicketView.state.in_(OPEN_STATES))
    )
    metrics = await customer_metrics(session, customer_id, now)
    if metrics.open_tickets != count:
        metrics.open_tickets = count or 0
        metrics.updated_at = now


# --- risk scores (离网/坏账预警) -----------------------------------------------------------------------------------


async def _score_computed(
    session: AsyncSession, customer_id: str, data: dict[str, Any], _occurred: datetime, now: datetime
) -> None:
    """The newest scoring (by scored_at) per model kind stands; a re-run of the same moment replaces it."""
    kind = data["model_kind"]
    scored_at = parse_rfc3339(data["scored_at"])
    score = parse_score(data["score"])
    current = await session.get(RiskScore, (customer_id, kind))
    if current is not None and scored_at < current.scored_at:
        return
    if current is None:
        current = RiskScore(customer_id=customer_id, model_kind=kind)
        session.add(current)
    current.score = score
    current.risk_band = data["risk_band"]
    current.reasons = data["reasons"]
    current.model_version = data["model_version"]
    current.scored_at = scored_at
    metrics = await customer_metrics(session, customer_id, now)
    if kind == "churn":
        metrics.churn_score = score
    else:
        metrics.bad_debt_score = score
    metrics.updated_at = now


def top_reasons(reasons: list[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    """The `n` reasons that raise the risk most (largest contribution first)."""
    return sorted(reasons, key=lambda r: Decimal(str(r["contribution"])), reverse=True)[:n]


# --- campaign contacts (营销触达) --------------------------------------------------------------------------------


async def _contact(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime
) -> CampaignContactView:
    contact = await session.get(CampaignContactView, data["contact_id"])
    if contact is None:
        contact = CampaignContactView(
            contact_id=data["contact_id"],
            customer_id=customer_id,
            campaign_id=data["campaign_id"],
            channel="unknown",
            status="sent",
            contacted_at=occurred,
            last_event_at=occurred,
        )
        session.add(contact)
    return contact


async def _contact_sent(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    """The contact's details are filled in whenever they arrive, also after the response (out of order)."""
    contact = await _contact(session, customer_id, data, occurred)
    contact.campaign_name = data["campaign_name"]
    contact.channel = data["channel"]
    contact.offer_code = data["offer_code"]
    contact.offer_name = data["offer_name"]
    contact.contacted_at = occurred
    contact.last_event_at = max(contact.last_event_at, occurred)


async def _contact_responded(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    """The newest response stands (accepted after clicked); an older one arriving late changes nothing."""
    contact = await _contact(session, customer_id, data, occurred)
    if contact.responded_at is not None and occurred < contact.responded_at:
        return
    contact.status = "responded"
    contact.response = data["response"]
    contact.responded_at = occurred
    contact.last_event_at = max(contact.last_event_at, occurred)


_PROJECTORS = {
    TICKET_CREATED: _ticket_created,
    TICKET_STATE_CHANGED: _ticket_state_changed,
    TICKET_CSAT_RECORDED: _ticket_csat_recorded,
    SCORE_COMPUTED: _score_computed,
    CONTACT_SENT: _contact_sent,
    CONTACT_RESPONDED: _contact_responded,
}
_KINDS = {"ticketing": "ticket", "churn": "score", "campaign": "campaign"}


# --- reading: what the 360 view and the lists show ------------------------------------------------------------------


def line_order(line: Subscription) -> tuple[Any, ...]:
    """Oldest line first, lines not yet activated last."""
    return (line.activated_at is None, line.activated_at or NO_STATE_YET, line.id)


def rule_segments_of(customer_id: Any) -> Select[tuple[Segment]]:
    """The active rule segments (客户群) the customer is a member of."""
    return (
        select(Segment)
        .join(SegmentMember, SegmentMember.segment_id == Segment.id)
        .where(SegmentMember.customer_id == customer_id, Segment.kind == "rule", Segment.status == "active")
    )


def newest_ticket_first() -> tuple[Any, ...]:
    return (func.coalesce(TicketView.opened_at, TicketView.last_event_at).desc(), TicketView.ticket_id.desc())


def ticket_order(ticket: TicketView) -> tuple[Any, ...]:
    """`newest_ticket_first`, ascending, for rows already read."""
    return (ticket.opened_at or ticket.last_event_at, ticket.ticket_id)


def tickets_of(customer_id: Any, *, open_only: bool) -> Select[tuple[TicketView]]:
    query = select(TicketView).where(TicketView.customer_id == customer_id)
    # The states as SQL text, not an expanding parameter: the 360 view's statement is compiled once and run
    # as it is, with no per-execution rewrite of an IN list.
    open_states = TicketView.state.in_([literal_column(f"'{state}'") for state in OPEN_STATES])
    return query.where(open_states) if open_only else query


async def tickets(
    session: AsyncSession, customer_id: str, *, open_only: bool, offset: int, limit: int
) -> tuple[int, list[TicketView]]:
    """(total, page) of the customer's tickets, newest first; the total comes with the page (one statement)."""
    query = tickets_of(customer_id, open_only=open_only)
    rows = (
        await session.execute(
            query.add_columns(func.count().over()).order_by(*newest_ticket_first()).offset(offset).limit(limit)
        )
    ).all()
    if rows or offset == 0:
        return (rows[0][1] if rows else 0), [ticket for ticket, _ in rows]
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return total or 0, []


async def risk_scores(session: AsyncSession, customer_id: str) -> dict[str, RiskScore]:
    """The customer's current scores by model kind (churn, bad_debt)."""
    found = await session.scalars(select(RiskScore).where(RiskScore.customer_id == customer_id))
    return {score.model_kind: score for score in found}


def contacts_of(customer_id: Any) -> Select[tuple[CampaignContactView]]:
    """The campaign contacts with the customer, newest first."""
    return (
        select(CampaignContactView)
        .where(CampaignContactView.customer_id == customer_id)
        .order_by(CampaignContactView.contacted_at.desc(), CampaignContactView.contact_id.desc())
    )


def contact_order(contact: CampaignContactView) -> tuple[Any, ...]:
    return (contact.contacted_at, contact.contact_id)


async def campaign_contacts(
    session: AsyncSession, customer_id: str, *, offset: int, limit: int
) -> tuple[int, list[CampaignContactView]]:
    """(total, page) of the campaign contacts with the customer, newest first."""
    query = contacts_of(customer_id)
    rows = (await session.execute(query.add_columns(func.count().over()).offset(offset).limit(limit))).all()
    if rows or offset == 0:
        return (rows[0][1] if rows else 0), [contact for contact, _ in rows]
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return total or 0, []


def timeline_of(customer_id: Any) -> Select[tuple[TimelineEntry]]:
    """The customer's interactions, newest first."""
    return (
        select(TimelineEntry)
        .where(TimelineEntry.customer_id == customer_id)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.seq.desc())
    )


def timeline_order(entry: TimelineEntry) -> tuple[Any, ...]:
    return (entry.occurred_at, entry.seq)
