"""Everything the 360° view (客户360视图) shows about one customer, read in one statement.

Each part is the same query the part's own endpoint runs (a customer's tickets, scores, contacts, bills, usage,
timeline), put side by side as JSON columns of one SELECT: a page that would take thirteen round trips takes
one, which is what lets two cores serve it to a contact centre's worth of agents at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, func, select

from crm_customer.domain import billing, projections
from crm_customer.models import (
    BillingAccount,
    CampaignContactView,
    Customer,
    CustomerMetrics,
    RiskScore,
    Segment,
    Subscription,
    TicketView,
    TimelineEntry,
)
from crm_kit.db import Database
from crm_kit.sqljson import document, from_rows, loads, rows_json

OPEN_TICKETS_SHOWN = 20
CONTACTS_SHOWN = 10


@dataclass
class CustomerView:
    customer: Customer
    accounts: list[BillingAccount]
    lines: list[Subscription]
    metrics: CustomerMetrics | None
    segments: list[Segment]
    billing: billing.BillingSummary
    usage: billing.Activity
    open_tickets: int
    tickets: list[TicketView]
    scores: dict[str, RiskScore]
    contacts: list[CampaignContactView]
    timeline: list[TimelineEntry]
    more_timeline: bool


def _one(rows: list[Any]) -> Any:
    return rows[0] if rows else None


@cache
def view_query() -> Select[tuple[str]]:
    """The one SELECT, built once: building SQLAlchemy expressions costs more than running this one on SQLite."""
    customer_id = bindparam("customer_id", type_=String)
    open_tickets = projections.tickets_of(customer_id, open_only=True)
    parts: dict[str, Any] = {
        "customer": rows_json(select(Customer).where(Customer.id == customer_id)),
        "accounts": rows_json(select(BillingAccount).where(BillingAccount.customer_id == customer_id)),
        "lines": rows_json(select(Subscription).where(Subscription.customer_id == customer_id)),
        "metrics": rows_json(select(CustomerMetrics).where(CustomerMetrics.customer_id == customer_id)),
        "segments": rows_json(projections.rule_segments_of(customer_id)),
        **billing.billing_parts(customer_id),
        "open_count": select(func.count()).select_from(open_tickets.subquery()).scalar_subquery(),
        "tickets": rows_json(open_tickets.order_by(*projections.newest_ticket_first()).limit(OPEN_TICKETS_SHOWN)),
        "scores": rows_json(select(RiskScore).where(RiskScore.customer_id == customer_id)),
        "contacts": rows_json(projections.contacts_of(customer_id).limit(CONTACTS_SHOWN)),
        "timeline": rows_json(projections.timeline_of(customer_id).limit(bindparam("timeline_rows", type_=Integer))),
    }
    return document(**parts)


async def load_view(db: Database, customer_id: str, as_of: date, timeline_limit: int) -> CustomerView | None:
    """The customer's view as of the day `as_of` (China Standard Time), the newest `timeline_limit` interactions;
    None when there is no such customer."""
    first_day, last_day = billing.activity_window(as_of)
    params = {"customer_id": customer_id, "first_day": first_day, "last_day": last_day}
    found = await db.read_one(view_query(), {**params, "timeline_rows": timeline_limit + 1})
    row = loads(found)
    customer = _one(from_rows(Customer, row["customer"]))
    if customer is None:
        return None
    timeline = sorted(from_rows(TimelineEntry, row["timeline"]), key=projections.timeline_order, reverse=True)
    return CustomerView(
        customer=customer,
        accounts=sorted(from_rows(BillingAccount, row["accounts"]), key=lambda a: a.id),
        lines=sorted(from_rows(Subscription, row["lines"]), key=projections.line_order),
        metrics=_one(from_rows(CustomerMetrics, row["metrics"])),
        segments=sorted(from_rows(Segment, row["segments"]), key=lambda s: s.name),
        billing=billing.billing_from(row),
        usage=billing.activity(row["usage"][0], as_of),
        open_tickets=row["open_count"],
        tickets=sorted(from_rows(TicketView, row["tickets"]), key=projections.ticket_order, reverse=True),
        scores={score.model_kind: score for score in from_rows(RiskScore, row["scores"])},
        contacts=sorted(from_rows(CampaignContactView, row["contacts"]), key=projections.contact_order, reverse=True),
        timeline=timeline[:timeline_limit],
        more_timeline=len(timeline) > timeline_limit,
    )
