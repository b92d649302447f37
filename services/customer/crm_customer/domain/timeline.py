"""The interaction timeline (客户接触历史) and the one-line summaries of billing events on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.models import Customer, TimelineEntry
from crm_kit.db import insert_ignoring_duplicates, utcnow


async def add_to_timeline(
    session: AsyncSession,
    customer_id: str,
    *,
    occurred_at: datetime,
    kind: str,
    event_type: str,
    summary: str,
    source_event_id: str,
) -> None:
    """One row per event about the customer; the same event again (same id) adds nothing.

    An erased customer's entries say only the event type, as erasure left the old ones: a summary quotes
    numbers, names and free text (PIPL 删除权). The callers have just loaded the customer, so the look-up is
    the session's identity map, not a query."""
    customer = await session.get(Customer, customer_id)
    if customer is not None and customer.erased_at is not None:
        summary = event_type
    row = {
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "kind": kind,
        "type": event_type,
        "summary": summary[:500],
        "source_event_id": source_event_id,
        "recorded_at": utcnow(),
    }
    await session.flush()  # the customer row first: the timeline row refers to it
    dialect = session.get_bind().dialect.name
    await session.execute(insert_ignoring_duplicates(dialect, TimelineEntry.__table__).values(**row))


async def timeline(
    session: AsyncSession, customer_id: str, kind: str | None, offset: int, limit: int
) -> tuple[int, list[TimelineEntry]]:
    """(total, page) of the customer's timeline, newest first (ties: the later recorded first)."""
    where = [TimelineEntry.customer_id == customer_id]
    if kind:
        where.append(TimelineEntry.kind == kind)
    total = await session.scalar(select(func.count()).select_from(TimelineEntry).where(*where)) or 0
    page = await session.scalars(
        select(TimelineEntry)
        .where(*where)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.seq.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, list(page)
