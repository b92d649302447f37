"""Privacy (个人信息保护, PIPL): the audit of unmasked reads, the export of everything held (查阅复制权), erasure by
pseudonymisation (删除权) and the merge of duplicate customers (客户合并).

Erasure keeps the customer's id and the facts the operator must keep (lines, bills, payments: billing records;
consents: proof of lawful processing) and removes what identifies the person: name, ID numbers, birth date,
gender, contact media, characteristics, phone numbers, free-text summaries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, inspect, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain import metrics
from crm_customer.domain.lines import count_lines, customer_status, msisdn_pseudonym
from crm_customer.models import (
    AccountStanding,
    Base,
    BillingAccount,
    BillingPayment,
    CampaignContactView,
    Consent,
    ConsentHistory,
    ContactMedium,
    Customer,
    CustomerCharacteristic,
    CustomerErasure,
    CustomerMerge,
    CustomerMetrics,
    DoNotDisturb,
    Invoice,
    InvoiceOverdue,
    KeyAccountAssignment,
    PiiAccess,
    RiskScore,
    SegmentMember,
    Subscription,
    TicketView,
    TimelineEntry,
    UsageDay,
)
from crm_kit.db import utcnow
from crm_kit.errors import Conflict
from crm_kit.presentation import shanghai

ERASED = "customer.profile.erased.v1"
MERGED = "customer.profile.merged.v1"
EXPORT_FIELDS = "all"


# --- the audit of personal-data reads ------------------------------------------------------------------------------


def audit_where(customer_id: str | None, actor: str | None, since: datetime | None) -> ColumnElement[bool]:
    where = []
    if customer_id:
        where.append(PiiAccess.customer_id == customer_id)
    if actor:
        where.append(PiiAccess.actor == actor)
    if since:
        where.append(PiiAccess.at >= since)
    return and_(true(), *where)


async def audit_log(
    session: AsyncSession, where: ColumnElement[bool], offset: int, limit: int
) -> tuple[int, list[PiiAccess]]:
    """(total, page) of unmasked reads, newest first."""
    total = await session.scalar(select(func.count()).select_from(PiiAccess).where(where)) or 0
    page = await session.scalars(
        select(PiiAccess).where(where).order_by(PiiAccess.at.desc(), PiiAccess.seq.desc()).offset(offset).limit(limit)
    )
    return total, list(page)


# --- export: everything held on the customer -----------------------------------------------------------------------


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return shanghai(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def as_dict(row: Base) -> dict[str, Any]:
    """Every column of the row: times in China Standard Time, dates as ISO dates, money as the integer fen stored."""
    return {attr.key: _value(getattr(row, attr.key)) for attr in inspect(row).mapper.column_attrs}


async def _all(
    session: AsyncSession, model: type[Base], where: ColumnElement[bool], *order: Any
) -> list[dict[str, Any]]:
    return [as_dict(row) for row in await session.scalars(select(model).where(where).order_by(*order))]


async def export(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """Everything the service holds on `customer`, section by section, complete (no paging)."""
    cid = customer.id
    dnd = await session.get(DoNotDisturb, cid)
    facts = await session.get(CustomerMetrics, cid)
    erasure = await session.get(CustomerErasure, cid)
    return {
        "customer_id": cid,
        "exported_at": shanghai(utcnow()),
        "profile": as_dict(customer),
        "contact_media": await _all(session, ContactMedium, ContactMedium.customer_id == cid, ContactMedium.id),
        "characteristics": await _all(
            session, CustomerCharacteristic, CustomerCharacteristic.customer_id == cid, CustomerCharacteristic.name
        ),
        "accounts": await _all(session, BillingAccount, BillingAccount.customer_id == cid, BillingAccount.id),
        "lines": await _all(session, Subscription, Subscription.customer_id == cid, Subscription.id),
        "consents": await _all(session, Consent, Consent.customer_id == cid, Consent.channel, Consent.purpose),
        "consent_history": await _all(session, ConsentHistory, ConsentHistory.customer_id == cid, ConsentHistory.seq),
        "do_not_disturb": as_dict(dnd) if dnd else None,
        "invoices": await _all(session, Invoice, Invoice.customer_id == cid, Invoice.billing_period, Invoice.id),
        "payments": await _all(session, BillingPayment, BillingPayment.customer_id == cid, BillingPayment.at),
        "overdue": await _all(session, InvoiceOverdue, InvoiceOverdue.customer_id == cid, InvoiceOverdue.invoice_id),
        "account_standing": await _all(
            session, AccountStanding, AccountStanding.customer_id == cid, AccountStanding.account_id
        ),
        "usage_days": await _all(
            session, UsageDay, UsageDay.customer_id == cid, UsageDay.usage_date, UsageDay.subscription_id
        ),
        "metrics": as_dict(facts) if facts else None,
        "tickets": await _all(session, TicketView, TicketView.customer_id == cid, TicketView.ticket_id),
        "risk_scores": await _all(session, RiskScore, RiskScore.customer_id == cid, RiskScore.model_kind),
        "campaign_contacts": await _all(
            session, CampaignContactView, CampaignContactView.customer_id == cid, CampaignContactView.contacted_at
        ),
        "segment_memberships": await _all(
            session, SegmentMember, SegmentMember.customer_id == cid, SegmentMember.segment_id
        ),
        "key_account_history": await _all(
            session, KeyAccountAssignment, KeyAccountAssignment.customer_id == cid, KeyAccountAssignment.seq
        ),
        "timeline": await _all(
            session, TimelineEntry, TimelineEntry.customer_id == cid, TimelineEntry.occurred_at, TimelineEntry.seq
        ),
        "merges": await _all(session, CustomerMerge, CustomerMerge.survivor_id == cid, CustomerMerge.seq),
        "erasure": as_dict(erasure) if erasure else None,
        "pii_access": await _all(session, PiiAccess, PiiAccess.customer_id == cid, PiiAccess.seq),
    }


# --- erasure (删除权) ------------------------------------------------------------------------------------------------


def pseudonym(customer_id: str) -> str:
    """The name an erased customer goes by: stable, and says nothing about the person."""
    return f"已删除客户 {hashlib.sha256(customer_id.encode()).hexdigest()[:8]}"


def check_not_merged(customer: Customer) -> None:
    """A merged duplicate is only a pointer to its survivor: nothing more is done to it."""
    if customer.merged_into:
        raise Conflict(
            f"Customer {customer.id} was merged into {customer.merged_into}",
            field="customer_id",
            merged_into=customer.merged_into,
        )


@dataclass
class Erasure:
    record: CustomerErasure
    created: bool


async def erase(session: AsyncSession, customer: Customer, *, reason: str, actor: str) -> Erasure:
    """Pseudonymise the customer, in the caller's transaction. A second request returns the first erasure."""
    done = await session.get(CustomerErasure, customer.id)
    if done is not None:
        return Erasure(done, created=False)
    check_not_merged(customer)
    now = utcnow()
    cid = customer.id
    customer.name = pseudonym(cid)
    customer.name_key = None
    customer.id_card_no = None
    customer.registration_no = None
    customer.birth_date = None
    customer.gender = None
    customer.erased_at = now
    customer.updated_at = now
    await session.execute(delete(ContactMedium).where(ContactMedium.customer_id == cid))
    await session.execute(delete(CustomerCharacteristic).where(CustomerCharacteristic.customer_id == cid))
    for line in await session.scalars(select(Subscription).where(Subscription.customer_id == cid)):
        line.msisdn = msisdn_pseudonym(line.id)
    # summaries quote numbers, names and free text: the event type alone still says what happened
    await session.execute(
        update(TimelineEntry).where(TimelineEntry.customer_id == cid).values(summary=TimelineEntry.type)
    )
    await session.execute(update(TicketView).where(TicketView.customer_id == cid).values(title=None))
    record = CustomerErasure(customer_id=cid, requested_by=actor, reason=reason, erased_at=now)
    session.add(record)
    await session.flush()
    return Erasure(record, created=True)


# --- merge (客户合并) ----------------------------------------------------------------------------------------------

MOVED_WHOLE: tuple[type[Any], ...] = (
    BillingAccount,
    Subscription,
    Invoice,
    BillingPayment,
    InvoiceOverdue,
    AccountStanding,
    UsageDay,
    TicketView,
    CampaignContactView,
    ContactMedium,
    ConsentHistory,
)
"""Rows that simply change hands: nothing of the survivor's can collide with them."""


def check_mergeable(survivor: Customer, duplicate: Customer) -> None:
    if survivor.id == duplicate.id:
        raise Conflict("A customer cannot be merged into itself", field="duplicate_id")
    for customer, field in ((survivor, "customer_id"), (duplicate, "duplicate_id")):
        if customer.merged_into:
            raise Conflict(
                f"Customer {customer.id} was already merged into {customer.merged_into}",
                field=field,
                merged_into=customer.merged_into,
            )
        if customer.erased_at:
            raise Conflict(f"Customer {customer.id} was erased; an erased customer is not merged", field=field)


async def _move_keyed(
    session: AsyncSession,
    model: type[Any],
    survivor_id: str,
    duplicate_id: str,
    key: tuple[str, ...],
    newer: str | None,
) -> int:
    """Move the duplicate's rows keyed by (customer_id, *key); where both hold one, the newer by `newer` stays
    (the survivor's on a tie, or always when `newer` is None)."""
    theirs = {
        tuple(getattr(r, k) for k in key): r
        for r in await session.scalars(select(model).where(model.customer_id == duplicate_id))
    }
    ours = {
        tuple(getattr(r, k) for k in key): r
        for r in await session.scalars(select(model).where(model.customer_id == survivor_id))
    }
    moved = 0
    for k, row in theirs.items():
        kept = ours.get(k)
        if kept is not None and (newer is None or getattr(kept, newer) >= getattr(row, newer)):
            await session.delete(row)
            continue
        if kept is not None:
            await session.delete(kept)
            await session.flush()
        row.customer_id = survivor_id
        moved += 1
    await session.flush()
    return moved


@dataclass
class Merge:
    record: CustomerMerge
    moved: dict[str, int]
    tier_changes: list[metrics.TierChange]
    """The survivor's built-in tiers that moved with what it took over: one tier_changed event each."""


async def merge(
    session: AsyncSession, survivor: Customer, duplicate: Customer, *, reason: str | None, actor: str
) -> Merge:
    """Fold `duplicate` into `survivor` in the caller's transaction; the duplicate stays as a pointer
    (status merged, merged_into) so late events and old links find the survivor. The survivor's facts and
    built-in tiers are recomputed from everything it now holds (lines, bills, usage), in the same transaction."""
    check_mergeable(survivor, duplicate)
    sid, did = survivor.id, duplicate.id
    moved: dict[str, int] = {}
    for model in MOVED_WHOLE:
        result = await session.execute(
            update(model)
            .where(model.customer_id == did)
            .values(customer_id=sid)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = result.rowcount or 0  # type: ignore[attr-defined]
    seen = select(TimelineEntry.source_event_id).where(TimelineEntry.customer_id == sid)
    await session.execute(
        delete(TimelineEntry).where(TimelineEntry.customer_id == did, TimelineEntry.source_event_id.in_(seen))
    )
    result = await session.execute(
        update(TimelineEntry)
        .where(TimelineEntry.customer_id == did)
        .values(customer_id=sid)
        .execution_options(synchronize_session=False)
    )
    moved["timeline_entry"] = result.rowcount or 0  # type: ignore[attr-defined]
    moved["segment_member"] = await _move_keyed(session, SegmentMember, sid, did, ("segment_id",), None)
    moved["customer_characteristic"] = await _move_keyed(session, CustomerCharacteristic, sid, did, ("name",), None)
    moved["risk_score"] = await _move_keyed(session, RiskScore, sid, did, ("model_kind",), "scored_at")
    moved["consent"] = await _move_keyed(session, Consent, sid, did, ("channel", "purpose"), "recorded_at")
    moved["do_not_disturb"] = await _move_keyed(session, DoNotDisturb, sid, did, (), "recorded_at")
    await session.execute(delete(CustomerMetrics).where(CustomerMetrics.customer_id == did))

    now = utcnow()
    if duplicate.key_account:
        session.add(
            KeyAccountAssignment(
                customer_id=did,
                from_manager=duplicate.account_manager,
                reason=f"merged into {sid}",
                changed_by=actor,
                changed_at=now,
            )
        )
    duplicate.merged_into = sid
    duplicate.status = "merged"
    duplicate.key_account = False
    duplicate.key_account_tier = None
    duplicate.account_manager = None
    duplicate.updated_at = now
    survivor.status = customer_status(await count_lines(session, sid))
    survivor.updated_at = now
    record = CustomerMerge(survivor_id=sid, merged_id=did, reason=reason, merged_by=actor, merged_at=now)
    session.add(record)
    await session.flush()
    tier_changes = await metrics.refresh(session, sid, now)
    return Merge(record, moved, tier_changes)
