"""Key accounts (大客户): designation, tier, the account manager (客户经理) who looks after them, and the history.

Only the customer row says who is a key account now; `KeyAccountAssignment` keeps every change, so who looked
after the customer when stays answerable after reassignments and revocations.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain.privacy import check_not_merged
from crm_customer.models import Customer, CustomerMetrics, KeyAccountAssignment, Subscription
from crm_kit.db import utcnow
from crm_kit.errors import Conflict

KEY_ACCOUNT_CHANGED = "customer.profile.key_account_changed.v1"


def change_kind(entry: KeyAccountAssignment) -> str:
    """What a history row records, read from who had the account before and after."""
    if entry.to_manager is None:
        return "revoked"
    if entry.from_manager is None:
        return "designated"
    if entry.from_manager == entry.to_manager:
        return "tier_changed"
    return "reassigned"


@dataclass
class KeyAccountChange:
    customer: Customer
    entry: KeyAccountAssignment | None
    """None: the request repeated the state on record, nothing changed."""


async def _record(
    session: AsyncSession, customer: Customer, to_manager: str | None, tier: str | None, reason: str | None, actor: str
) -> KeyAccountChange:
    now = utcnow()
    entry = KeyAccountAssignment(
        customer_id=customer.id,
        from_manager=customer.account_manager if customer.key_account else None,
        to_manager=to_manager,
        tier=tier,
        reason=reason,
        changed_by=actor,
        changed_at=now,
    )
    session.add(entry)
    customer.key_account = to_manager is not None
    customer.key_account_tier = tier
    customer.account_manager = to_manager
    customer.updated_at = now
    await session.flush()
    return KeyAccountChange(customer, entry)


async def designate(
    session: AsyncSession, customer: Customer, *, tier: str, manager: str, reason: str, actor: str
) -> KeyAccountChange:
    """Make the customer a key account of `tier` under `manager`; on a key account, change tier and/or manager.
    The same tier and manager again changes nothing."""
    check_not_merged(customer)
    if customer.key_account and (customer.key_account_tier, customer.account_manager) == (tier, manager):
        return KeyAccountChange(customer, None)
    return await _record(session, customer, manager, tier, reason, actor)


async def reassign(
    session: AsyncSession, customer: Customer, *, to_manager: str, reason: str, actor: str
) -> KeyAccountChange:
    """Hand a key account to another manager; the tier stays. Reassigning to the current manager changes nothing."""
    check_not_merged(customer)
    if not customer.key_account:
        raise Conflict(f"Customer {customer.id} is not a key account; designate it first", field="customer_id")
    if customer.account_manager == to_manager:
        return KeyAccountChange(customer, None)
    return await _record(session, customer, to_manager, customer.key_account_tier, reason, actor)


async def revoke(session: AsyncSession, customer: Customer, *, reason: str | None, actor: str) -> KeyAccountChange:
    """The customer is no longer a key account: no tier, no manager (who loses sight of it). Idempotent."""
    if not customer.key_account:
        return KeyAccountChange(customer, None)
    return await _record(session, customer, None, None, reason, actor)


async def history(
    session: AsyncSession, customer_id: str, offset: int, limit: int
) -> tuple[int, list[KeyAccountAssignment]]:
    """(total, page) of the key account's changes, newest first."""
    where = KeyAccountAssignment.customer_id == customer_id
    total = await session.scalar(select(func.count()).select_from(KeyAccountAssignment).where(where)) or 0
    page = await session.scalars(
        select(KeyAccountAssignment).where(where).order_by(KeyAccountAssignment.seq.desc()).offset(offset).limit(limit)
    )
    return total, list(page)


@dataclass
class PortfolioRow:
    customer: Customer
    active_lines: int
    metrics: CustomerMetrics | None


def key_accounts_where(*, tier: str | None, manager: str | None) -> ColumnElement[bool]:
    where = [Customer.key_account.is_(True)]
    if tier:
        where.append(Customer.key_account_tier == tier)
    if manager:
        where.append(Customer.account_manager == manager)
    return and_(*where)


async def portfolio(
    session: AsyncSession, where: ColumnElement[bool], offset: int, limit: int
) -> tuple[int, list[PortfolioRow]]:
    """(total, page) of key accounts, in customer id order, with their active lines and value facts."""
    total = await session.scalar(select(func.count()).select_from(Customer).where(where)) or 0
    active = (
        select(func.count())
        .select_from(Subscription)
        .where(Subscription.customer_id == Customer.id, Subscription.status == "active")
        .scalar_subquery()
    )
    query: Select[tuple[Customer, int, CustomerMetrics | None]] = (
        select(Customer, active, CustomerMetrics)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(where)
        .order_by(Customer.id)
        .offset(offset)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return total, [PortfolioRow(customer, lines or 0, metrics) for customer, lines, metrics in rows]
