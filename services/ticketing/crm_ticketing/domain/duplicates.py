"""Duplicate tickets (重复工单): the same customer raising the same category again while the first is still being
worked, or soon after it was; the new ticket is linked to that earlier one (`isDuplicateOf`), not refused: the
customer called again, and the second call is itself something to answer for."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_ticketing.domain.lifecycle import OPEN_STATES
from crm_ticketing.models import Ticket

WINDOW = timedelta(hours=72)
"""How long after an earlier ticket was opened a new one of the same customer and category still repeats it, even
when the earlier one is done; the settings' default (CRM_TICKETING_DUPLICATE_WINDOW_HOURS)."""


async def original_of(session: AsyncSession, ticket: Ticket, window: timedelta) -> str | None:
    """The ticket the new `ticket` repeats: the earliest of its customer's tickets in its category still open, else
    the most recent one opened within `window` before it; None when it repeats none."""
    earlier = select(Ticket.id).where(
        Ticket.customer_id == ticket.customer_id,
        Ticket.category == ticket.category,
        Ticket.id != ticket.id,
        Ticket.creation_date <= ticket.creation_date,
    )
    still_open = earlier.where(Ticket.status.in_(OPEN_STATES)).order_by(Ticket.creation_date, Ticket.id).limit(1)
    recent = (
        earlier.where(Ticket.creation_date >= ticket.creation_date - window)
        .order_by(Ticket.creation_date.desc(), Ticket.id.desc())
        .limit(1)
    )
    return await session.scalar(still_open) or await session.scalar(recent)
