"""Tickets (工单): open one, move it through its lifecycle, patch it, delete it, list them.

Plain functions over the caller's session: they flush, the caller commits, and the events they stage in the outbox
commit with the change. Each takes `now`, the instant the change happens at (the API passes the request's clock),
so the SLA clocks can be driven through nights and weekends deterministically.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.errors import Conflict, InvalidInput
from crm_kit.events import CloudEvent, Contracts
from crm_kit.outbox import stage
from crm_ticketing import events
from crm_ticketing.domain import clocks, duplicates, hub, queues, reports
from crm_ticketing.domain.lifecycle import (
    ACKNOWLEDGED,
    CLOSED,
    RESOLVED,
    IllegalTransition,
    check_transition,
    is_reopen,
)
from crm_ticketing.domain.representation import AGENT_ROLE, CUSTOMER_ROLE, TicketView, load_views
from crm_ticketing.domain.sla import DEFAULT_POLICIES, PRIORITIES, pick_policy
from crm_ticketing.models import (
    CustomerStanding,
    Queue,
    SlaClockRow,
    Ticket,
    TicketNote,
    TicketStatusChange,
)
from crm_ticketing.schemas.trouble_ticket import TroubleTicketCreate, TroubleTicketUpdate

DEFAULT_CHANNEL = "hotline"
"""A ticket that does not say where it was raised was typed in by an agent at the contact centre (客服热线), where
most tickets come from; the created event must name a channel."""


class IllegalStatusChange(Conflict):
    """The lifecycle refuses the move; the problem lists the statuses the ticket may move to instead (`allowed`)."""

    slug = "illegal-transition"
    title = "The ticket cannot move to that status"


class MergedCustomer(Conflict):
    """The customer was merged into another (客户合并): tickets are opened for the survivor, named in `merged_into`."""

    slug = "customer-merged"
    title = "The customer was merged into another"


# --- ids ---------------------------------------------------------------------------------------------------------

ID_PREFIX = "TT"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        digits.append(_CROCKFORD[digit])
    return "".join(reversed(digits))


def new_ticket_id(now: datetime) -> str:
    """`TT` + 10 characters of milliseconds since 1970 + 10 random ones, in Crockford's base32 as a ULID is: ids
    sort as the tickets were opened, and replicas opening tickets in the same millisecond do not collide."""
    return ID_PREFIX + _base32(int(now.timestamp() * 1000), 10) + _base32(secrets.randbits(50), 10)


# --- reading -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFilter:
    """What a list asks for: each tuple is "any of these", the other members must match exactly."""

    status: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    channel: tuple[str, ...] = ()
    ticket_type: tuple[str, ...] = ()
    customer_id: str | None = None
    queue: str | None = None
    assignee: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        for column, values in (
            (Ticket.status, self.status),
            (Ticket.priority, self.priority),
            (Ticket.category, self.category),
            (Ticket.channel, self.channel),
            (Ticket.ticket_type, self.ticket_type),
        ):
            if values:
                where.append(column.in_(values))
        for column, value in (
            (Ticket.customer_id, self.customer_id),
            (Ticket.queue, self.queue),
            (Ticket.assignee, self.assignee),
        ):
            if value is not None:
                where.append(column == value)
        if self.created_after is not None:
            where.append(Ticket.creation_date > self.created_after)
        if self.created_before is not None:
            where.append(Ticket.creation_date < self.created_before)
        return where


SORTS: dict[str, ColumnElement[Any]] = {
    "creationDate": Ticket.creation_date,
    "lastUpdate": Ticket.last_update,
    "statusChangeDate": Ticket.status_change_date,
    "priority": case({priority: rank for rank, priority in enumerate(PRIORITIES)}, value=Ticket.priority),
    "status": Ticket.status,
    "category": Ticket.category,
    "id": Ticket.id,
}
"""What a list sorts by; priority by urgency (critical first when ascending), not by name."""
DEFAULT_SORT = "-creationDate"


def order_by(sort: str | None) -> list[Any]:
    """`-creationDate,priority` → ORDER BY; the id breaks ties, so pages never overlap."""
    order: list[Any] = []
    for part in (p.strip() for p in (sort or DEFAULT_SORT).split(",")):
        if not part:
            continue
        key = part.removeprefix("-").removeprefix("+")
        if key not in SORTS:
            raise InvalidInput(f"Cannot sort by {key!r}; sort by one of {', '.join(SORTS)}", field="sort")
        order.append(SORTS[key].desc() if part.startswith("-") else SORTS[key].asc())
    return [*order, Ticket.id]


async def list_tickets(
    session: AsyncSession, where: Sequence[ColumnElement[bool]], order: Sequence[Any], offset: int, limit: int
) -> tuple[int, list[TicketView]]:
    """The total that match, and the page of them."""
    query = select(Ticket.id).where(*where)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ids = list(await session.scalars(query.order_by(*order).offset(offset).limit(limit)))
    return total or 0, await load_views(session, ids)


# --- changing ----------------------------------------------------------------------------------------------------


def _as_json(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """As the TMF members were given, camelCase, without the empty ones."""
    return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]


async def open_ticket(
    session: AsyncSession,
    contracts: Contracts,
    body: TroubleTicketCreate,
    *,
    actor: str,
    now: datetime,
    duplicate_window: timedelta = duplicates.WINDOW,
) -> Ticket:
    """A new ticket, acknowledged (已受理), with its SLA picked from category × priority × the customer's standing
    (a customer not heard of is standard) and both clocks running. It is routed to its queue and handed to an agent
    there (crm_ticketing.domain.queues), unless a party with role `agent` is given: that one is the assignee. One
    repeating an earlier ticket within `duplicate_window` is linked to it (crm_ticketing.domain.duplicates)."""
    customer = next(party for party in body.related_party if party.role == CUSTOMER_ROLE)
    agents = [party for party in body.related_party if party.role == AGENT_ROLE]
    if len(agents) > 1:
        raise InvalidInput("at most one party with role 'agent' (the assignee)", field="relatedParty")
    standing = await session.get(CustomerStanding, customer.id)
    if standing is not None and standing.merged_into:
        raise MergedCustomer(
            f"Customer {customer.id} was merged into {standing.merged_into}; open the ticket for it",
            field="relatedParty",
            merged_into=standing.merged_into,
        )
    key_account = bool(standing and standing.key_account)
    policy = pick_policy(DEFAULT_POLICIES, body.category, body.priority, key_account)
    ticket = Ticket(
        id=new_ticket_id(now),
        customer_id=customer.id,
        customer_name=customer.name,
        customer_referred_type=customer.referred_type,
        ticket_type=body.ticket_type,
        category=body.category,
        priority=body.priority,
        severity=body.severity,
        name=body.name,
        description=body.description,
        status=ACKNOWLEDGED,
        status_change_date=now,
        channel=body.channel.id if body.channel else DEFAULT_CHANNEL,
        channel_name=body.channel.name if body.channel else None,
        escalation_level=0,
        sla_policy_id=policy.id,
        key_account=key_account,
        related_parties=_as_json([p for p in body.related_party if p.role not in (CUSTOMER_ROLE, AGENT_ROLE)]),
        related_entities=_as_json(body.related_entity),
        attachments=_as_json(body.attachment),
        external_identifiers=_as_json(body.external_identifier),
        creation_date=now,
        last_update=now,
        requested_resolution_date=body.requested_resolution_date,
    )
    # Routing and duplicates read before the ticket is written: on SQLite the first write takes the database's one
    # write lock, and these reads would hold every other writer up.
    routing = await queues.route(session, ticket, agents[0].id if agents else None)
    ticket.queue, ticket.assignee = routing.queue, routing.assignee
    ticket.duplicate_of = await duplicates.original_of(session, ticket, duplicate_window)
    session.add(ticket)
    await session.flush()  # before the rows that refer to it: without relationship()s, flushes are not FK-ordered
    session.add(TicketStatusChange(ticket_id=ticket.id, status=ACKNOWLEDGED, change_date=now, changed_by=actor))
    session.add_all(TicketNote(ticket_id=ticket.id, author=actor, date=now, text=note.text) for note in body.note)
    if routing.queue or routing.assignee:
        session.add(
            queues.transfer_record(
                ticket.id, (None, None), (routing.queue, routing.assignee), actor, now, routing.reason
            )
        )
    started = clocks.start(ticket.id, policy, now)
    session.add_all(started)
    await session.flush()
    resolution_due = next(row.due_at for row in started if row.kind == clocks.RESOLUTION)
    created = [events.ticket_created(ticket, resolution_due)]
    await stage(session, contracts, created)
    await hub.notify(session, ticket.id, created, now=now)
    return ticket


async def change_status(
    session: AsyncSession,
    contracts: Contracts,
    ticket: Ticket,
    to_state: str,
    reason: str | None,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Move the ticket, its SLA clocks with it (see crm_ticketing.domain.clocks), record the move, stage the event.
    IllegalStatusChange (409) when the lifecycle refuses it."""
    from_state = ticket.status
    try:
        check_transition(from_state, to_state, resolved_at=ticket.resolution_date, now=now)
    except IllegalTransition as refused:
        raise IllegalStatusChange(
            refused.reason, field="status", current_status=from_state, allowed=list(refused.allowed)
        ) from refused
    # Never before the last change: a replica whose clock lags another's by a few ms must not run a clock backwards.
    at = max(now, ticket.status_change_date)
    clock_rows = await clocks.load(session, ticket.id)
    clocks.follow(clock_rows, from_state, to_state, at)
    if from_state == ACKNOWLEDGED:
        ticket.first_responded_at = at
    if to_state == RESOLVED:
        ticket.resolution_date = at
    elif is_reopen(from_state, to_state):
        ticket.resolution_date = None
    ticket.status = to_state
    ticket.status_change_date = at
    ticket.status_change_reason = reason
    ticket.last_update = max(at, ticket.last_update)
    session.add(
        TicketStatusChange(
            ticket_id=ticket.id,
            from_status=from_state,
            status=to_state,
            change_date=at,
            change_reason=reason,
            changed_by=actor,
        )
    )
    await session.flush()
    outcome = await _outcome(session, ticket, clock_rows)
    staged = [events.state_changed(ticket, from_state), *outcome]
    await stage(session, contracts, staged)
    await hub.notify(session, ticket.id, staged, now=now)


async def _outcome(session: AsyncSession, ticket: Ticket, clock_rows: dict[str, SlaClockRow]) -> list[CloudEvent]:
    """The resolved or closed event of the move just made, if it was one: the service-quality facts go with it."""
    if ticket.status == CLOSED:
        return [events.ticket_closed(ticket)]
    if ticket.status != RESOLVED:
        return []
    transferred, reopened = (
        await session.execute(
            select(reports.transferred_after_opening(), reports.reopened()).where(Ticket.id == ticket.id)
        )
    ).one()
    resolution = clock_rows[clocks.RESOLUTION]
    return [
        events.ticket_resolved(
            ticket,
            sla_met=resolution.breached_at is None,
            first_contact=not (transferred or reopened),
            reopened=bool(reopened),
        )
    ]


_PLAIN = (
    "description",
    "severity",
    "priority",
    "name",
    "category",
    "expected_resolution_date",
    "requested_resolution_date",
)
"""Members a merge-patch sets as they are (null clears those that may be empty)."""
_LISTS = {"related_entity": "related_entities", "attachment": "attachments"}
"""Members whose list a merge-patch replaces whole."""


async def patch_ticket(
    session: AsyncSession,
    contracts: Contracts,
    ticket: Ticket,
    patch: TroubleTicketUpdate,
    *,
    actor: str,
    now: datetime,
) -> None:
    """Apply a merge-patch (TroubleTicketUpdate says what each member does). The SLA policy stays the one chosen when
    the ticket was opened: a later change of priority or category is not a new promise to the customer."""
    present = patch.model_fields_set
    before = hub.snapshot(ticket)
    changed = False
    for name in _PLAIN:
        if name in present and getattr(ticket, name) != (value := getattr(patch, name)):
            setattr(ticket, name, value)
            changed = True
    for member, column in _LISTS.items():
        if member in present and getattr(ticket, column) != (items := _as_json(getattr(patch, member))):
            setattr(ticket, column, items)
            changed = True
    for note in patch.note or ():
        session.add(TicketNote(ticket_id=ticket.id, author=actor, date=now, text=note.text))
        changed = True
    if present & {"queue", "assignee"}:
        changed = await _transfer(session, ticket, patch, actor=actor, now=now) or changed
    if patch.status is not None:
        await change_status(session, contracts, ticket, patch.status, patch.status_change_reason, actor=actor, now=now)
    elif changed:
        ticket.last_update = max(now, ticket.last_update)
    await session.flush()
    await hub.notify_changed(session, ticket, before, noted=bool(patch.note), now=now)


async def _transfer(
    session: AsyncSession, ticket: Ticket, patch: TroubleTicketUpdate, *, actor: str, now: datetime
) -> bool:
    """转派: a new queue or assignee, recorded with who moved it; False when the patch repeats what is set. A queue
    that does not exist is refused: the ticket would wait where no agent ever looks."""
    present = patch.model_fields_set
    queue = patch.queue if "queue" in present else ticket.queue
    if queue != ticket.queue and await session.get(Queue, queue) is None:
        raise InvalidInput(f"No queue {queue}; see /api/v1/queues", field="queue")
    assignee = patch.assignee if "assignee" in present else ticket.assignee
    return queues.transfer(session, ticket, queue, assignee, actor=actor, now=now)


async def delete_ticket(session: AsyncSession, ticket_id: str) -> None:
    """The ticket and everything of it (history, notes, transfers, clocks: ON DELETE CASCADE). No event on the bus:
    the contracts have none, and deleting is for tickets raised by mistake or in test; TMF621 listeners are told."""
    await hub.notify_deleted(session, ticket_id)
    await session.execute(delete(Ticket).where(Ticket.id == ticket_id))
