"""How BOSS subscription events shape customers, billing accounts and lines (用户/号码)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.models import (
    BillingAccount,
    Customer,
    Subscription,
)
from crm_kit.db import utcnow
from crm_kit.events import parse_rfc3339

LINE_STATUS_AFTER = {
    "billing.subscription.activated.v1": "active",
    "billing.subscription.resumed.v1": "active",
    "billing.subscription.suspended.v1": "suspended",
    "billing.subscription.terminated.v1": "terminated",
    "billing.subscription.ported_out.v1": "ported_out",
}
ENDED = ("terminated", "ported_out")
SIM_SWAPPED = "billing.subscription.sim_swapped.v1"
"""补换卡: the number moved to a new SIM. The line records it as its latest event and keeps its state and plan."""
ADDON_ORDERED = "billing.subscription.addon_ordered.v1"
"""叠加包/增值业务订购: a pack or service on top of the plan. The line records it as its latest event and keeps its
state and plan; the timeline says what was ordered and for how much."""
MERGE_HOPS = 8
"""How many merges a late event follows (A merged into B, B into C, ...) before it lands where it stops."""


@dataclass
class LineCounts:
    active: int
    suspended: int
    total: int


@dataclass
class Change:
    customer: Customer
    lines: LineCounts
    created: bool
    profile_changed: bool


def customer_status(lines: LineCounts) -> str:
    """active: a line in service; suspended: lines exist but all are suspended (停机); inactive: none open."""
    if lines.active:
        return "active"
    if lines.suspended:
        return "suspended"
    return "inactive"


async def count_lines(session: AsyncSession, customer_id: str) -> LineCounts:
    rows = dict(
        (
            await session.execute(
                select(Subscription.status, func.count())
                .where(Subscription.customer_id == customer_id)
                .group_by(Subscription.status)
            )
        ).all()
    )
    return LineCounts(active=rows.get("active", 0), suspended=rows.get("suspended", 0), total=sum(rows.values()))


def msisdn_pseudonym(subscription_id: str) -> str:
    """The number an erased customer's line shows instead of its MSISDN: stable per line, says nothing."""
    return f"DEL{hashlib.sha256(subscription_id.encode()).hexdigest()[:12]}"


async def ensure_customer(session: AsyncSession, customer_id: str, now: datetime) -> tuple[Customer, bool]:
    """The customer, or a placeholder (status inactive, no details yet) when the BOSS names one we have not seen:
    events about a customer may arrive before the one that introduces them. A customer merged into another
    (客户合并) stands for the survivor. Returns (customer, created)."""
    customer = await session.get(Customer, customer_id)
    for _ in range(MERGE_HOPS):
        if customer is None or not customer.merged_into:
            break
        customer = await session.get(Customer, customer.merged_into)
    if customer is not None:
        return customer, False
    customer = Customer(id=customer_id, status="inactive", created_at=now, updated_at=now)
    session.add(customer)
    return customer, True


async def ensure_account(session: AsyncSession, account_id: str, customer_id: str, now: datetime) -> None:
    """The billing account is recorded with the customer it was first seen with."""
    if await session.get(BillingAccount, account_id) is None:
        session.add(BillingAccount(id=account_id, customer_id=customer_id, created_at=now))
        await session.flush()


async def apply_subscription_event(session: AsyncSession, event_type: str, data: dict[str, Any]) -> Change:
    """Apply one billing.subscription.* event.

    A stale event (older than the line's last applied one: it arrived out of order) changes nothing at all:
    not the line, not the customer's details, not the accounts.
    """
    now = utcnow()
    occurred = parse_rfc3339(data["occurred_at"])
    line = await session.get(Subscription, data["subscription_id"])
    if line is not None and occurred < line.last_event_at:
        owner = await session.get_one(Customer, line.customer_id)
        return Change(owner, await count_lines(session, owner.id), created=False, profile_changed=False)

    customer, created = await ensure_customer(session, data["customer_id"], now)
    before = (customer.name, customer.customer_type, customer.region, customer.status)
    lines_before = await count_lines(session, customer.id) if not created else LineCounts(0, 0, 0)

    party = data.get("customer")
    if party:
        customer.customer_type = party["type"]
        customer.region = party["region"]
        if customer.erased_at is None:  # an erased customer's name and ID number are not learnt again
            customer.name = party["name"]
            customer.name_key = party["name"].lower()
            customer.id_card_no = party.get("id_card_no", customer.id_card_no)

    await ensure_account(session, data["account_id"], customer.id, now)

    if line is None:
        line = Subscription(
            id=data["subscription_id"],
            customer_id=customer.id,
            account_id=data["account_id"],
            msisdn=data["msisdn"],
            status="active",
            last_event_at=occurred,
            updated_at=now,
        )
        session.add(line)
    _apply_to_line(line, event_type, data, occurred)
    if customer.erased_at is not None:
        line.msisdn = msisdn_pseudonym(line.id)
    line.updated_at = now
    await session.flush()

    lines = await count_lines(session, customer.id)
    customer.status = customer_status(lines)
    after = (customer.name, customer.customer_type, customer.region, customer.status)
    changed = created or before != after or lines != lines_before
    if changed:
        customer.updated_at = now
    return Change(customer, lines, created, profile_changed=changed)


def _apply_to_line(line: Subscription, event_type: str, data: dict[str, Any], occurred: datetime) -> None:
    line.msisdn = data["msisdn"]
    line.account_id = data["account_id"]
    line.last_event_at = occurred
    if "plan" in data:
        line.plan_code = data["plan"]["code"]
        line.plan_name = data["plan"]["name"]
        line.monthly_fee_fen = data["plan"]["monthly_fee_fen"]
    if event_type == "billing.subscription.activated.v1":
        line.activated_at = occurred
        line.ended_at = None
        line.payment_mode = data["payment_mode"]
        line.dealer_code = data.get("dealer_code")
        if data.get("contract_end"):
            line.contract_end = date.fromisoformat(data["contract_end"])
    new_status = LINE_STATUS_AFTER.get(event_type)
    if new_status:
        line.status = new_status
        line.status_reason = data.get("reason")
        if new_status in ENDED:
            line.ended_at = occurred
            line.recipient_operator = data.get("recipient_operator")
