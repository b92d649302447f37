"""Who may do what with tickets, and which tickets a caller may see.

- Reading needs a staff role or key_account_manager; a caller who is only a key-account manager (客户经理) sees the
  tickets of the key accounts in their own portfolio (as customer.profile last said) and nothing else.
- Opening and changing tickets: agents, supervisors, administrators. Deleting: administrators only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path
from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.auth import Caller, Principal
from crm_kit.errors import NotFound
from crm_kit.service import DbSession
from crm_ticketing.models import CustomerStanding, Ticket

STAFF = ("agent", "supervisor", "admin")
READERS = (*STAFF, "key_account_manager")
WRITERS = STAFF
ADMINS = ("admin",)
SUPERVISORS = ("supervisor", "admin")
"""Team figures (averages, attainment, backlogs) and the team's set-up (queues and who works them) are the
supervisors' (班长) call, not an agent's."""


def portfolio_only(principal: Principal) -> bool:
    """A key-account manager with no broader role works only on their own portfolio."""
    return principal.has_role("key_account_manager") and not principal.has_role(*STAFF)


def visible(principal: Principal) -> ColumnElement[bool]:
    """The tickets `principal` may see, as a WHERE clause."""
    if not portfolio_only(principal):
        return true()
    portfolio = select(CustomerStanding.customer_id).where(
        CustomerStanding.key_account.is_(True), CustomerStanding.account_manager == principal.subject
    )
    return Ticket.customer_id.in_(portfolio)


async def reader(principal: Caller) -> Principal:
    principal.require_role(*READERS)
    return principal


async def writer(principal: Caller) -> Principal:
    principal.require_role(*WRITERS)
    return principal


async def admin(principal: Caller) -> Principal:
    principal.require_role(*ADMINS)
    return principal


async def supervisor(principal: Caller) -> Principal:
    principal.require_role(*SUPERVISORS)
    return principal


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
Admin = Annotated[Principal, Depends(admin)]

TicketId = Annotated[
    str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The ticket id, e.g. TT01M8323B80SW64BHWC78")
]


async def _one(session: AsyncSession, query: Select[tuple[Ticket]], ticket_id: str) -> Ticket:
    ticket = await session.scalar(query)
    if ticket is None:
        raise NotFound(f"No trouble ticket {ticket_id}", field="id")
    return ticket


async def existing_ticket(ticket_id: TicketId, session: DbSession, principal: Reader) -> Ticket:
    """The ticket, if the caller may see it (404 otherwise: a ticket outside a portfolio is not theirs to know of)."""
    return await _one(session, select(Ticket).where(Ticket.id == ticket_id, visible(principal)), ticket_id)


async def ticket_for_update(ticket_id: TicketId, session: DbSession, principal: Writer) -> Ticket:
    """The ticket, locked (PostgreSQL) so that one ticket's changes apply one at a time."""
    return await _one(session, select(Ticket).where(Ticket.id == ticket_id).with_for_update(), ticket_id)


async def ticket_for_delete(ticket_id: TicketId, session: DbSession, principal: Admin) -> Ticket:
    return await _one(session, select(Ticket).where(Ticket.id == ticket_id).with_for_update(), ticket_id)


ExistingTicket = Annotated[Ticket, Depends(existing_ticket)]
TicketForUpdate = Annotated[Ticket, Depends(ticket_for_update)]
TicketForDelete = Annotated[Ticket, Depends(ticket_for_delete)]
