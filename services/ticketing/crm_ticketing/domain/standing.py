"""What ticketing learns of customers from customer.profile (客户资料): which are key accounts (大客户, the SLA's
green channel) and in whose portfolio (客户经理), and what became of customers erased (删除权) or merged (客户合并).

A customer ticketing has never heard of is a standard customer: a ticket never waits for the customer service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_ticketing.models import CustomerStanding, Ticket, TicketNote, TicketStatusChange

ERASED_TEXT = "[已删除 erased at the customer's request]"
"""What an erased customer's ticket texts read afterwards: the ticket's facts (type, category, dates, SLA) stay."""
_PERSONAL = ("name", "description", "url", "href")
"""Members of the JSON lists that may say who the customer is or point at their documents."""


async def standing(session: AsyncSession, customer_id: str) -> CustomerStanding:
    """The customer's standing, made (a standard customer) the first time ticketing hears of it."""
    found = await session.get(CustomerStanding, customer_id)
    if found is None:
        found = CustomerStanding(customer_id=customer_id, key_account=False)
        session.add(found)
        await session.flush()
    return found


async def key_account_changed(
    session: AsyncSession,
    customer_id: str,
    *,
    key_account: bool,
    tier: str | None,
    account_manager: str | None,
    changed_at: datetime,
) -> None:
    """The newest change wins: one older than what is on record, arriving late, changes nothing; a merged duplicate
    is no key account any more, whatever comes later."""
    customer = await standing(session, customer_id)
    if customer.merged_into or (customer.last_event_at is not None and changed_at < customer.last_event_at):
        return
    customer.key_account = key_account
    customer.key_account_tier = tier
    customer.account_manager = account_manager
    customer.last_event_at = changed_at
    await session.flush()


def _scrubbed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k not in _PERSONAL} for item in items]


async def erased(session: AsyncSession, customer_id: str, erased_at: datetime) -> None:
    """Pseudonymise what the customer's tickets say about them (PIPL art. 47): the customer's name, the title, the
    description, notes, status reasons, the survey comment and the names and links in the related lists. Tickets
    opened afterwards are the customer's new words and are kept."""
    customer = await standing(session, customer_id)
    if customer.erased_at is not None:
        return
    customer.erased_at = erased_at
    tickets = select(Ticket.id).where(Ticket.customer_id == customer_id, Ticket.creation_date <= erased_at)
    await session.execute(
        update(TicketNote)
        .where(TicketNote.ticket_id.in_(tickets))
        .values(text=ERASED_TEXT)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(TicketStatusChange)
        .where(TicketStatusChange.ticket_id.in_(tickets))
        .values(change_reason=None)
        .execution_options(synchronize_session=False)
    )
    for ticket in await session.scalars(select(Ticket).where(Ticket.id.in_(tickets))):
        ticket.customer_name = None
        ticket.name = None
        ticket.description = ERASED_TEXT
        ticket.status_change_reason = None
        ticket.csat_comment = None
        ticket.related_parties = _scrubbed(ticket.related_parties)
        ticket.related_entities = _scrubbed(ticket.related_entities)
        ticket.attachments = _scrubbed(ticket.attachments)
    await session.flush()


async def merged(session: AsyncSession, survivor_id: str, merged_id: str) -> None:
    """The duplicate's tickets are the survivor's from now on (their later events are keyed by the survivor); the
    duplicate is a pointer to the survivor and no key account. Their SLA stays as it was when each was opened."""
    duplicate = await standing(session, merged_id)
    await standing(session, survivor_id)
    duplicate.merged_into = survivor_id
    duplicate.key_account = False
    duplicate.key_account_tier = None
    duplicate.account_manager = None
    await session.execute(
        update(Ticket)
        .where(Ticket.customer_id == merged_id)
        .values(customer_id=survivor_id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
