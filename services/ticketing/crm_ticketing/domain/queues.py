"""Work queues (工单队列) and who gets a new ticket: routing on open, assignment within the queue, the agents' "pull
next" from the pool (工单池), and the live load a supervisor (班长) watches.

Routing: a key account's ticket (大客户) goes to the green channel (绿色通道) serving its category, any other ticket
(and a key account's when no green channel serves its category) to the queue listing its category. A queue with no
categories serves all of them only as a green channel: the escalation queues list none and are not green, so
routing never picks them; escalation (crm_ticketing.domain.escalation) moves tickets there by name.

Assignment hands the ticket to an available agent (坐席) of that queue who is under their `max_open`: in turn
(轮询, round_robin) or to the one with fewest open tickets (最少负荷, least_loaded). An agent's load counts their open
tickets in every queue, since it is one person working them. With nobody to hand it to, the ticket waits in the
queue unassigned until an agent pulls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.errors import Conflict, InvalidInput, NotFound
from crm_ticketing.domain.lifecycle import OPEN_STATES
from crm_ticketing.domain.sla import PRIORITIES
from crm_ticketing.models import Queue, QueueAgent, Ticket, TicketTransfer

ROUND_ROBIN = "round_robin"
ESCALATION = {1: "supervisors", 2: "complaints-management"}
"""Queue a ticket goes to when an SLA breach raises it to a level (crm_ticketing.domain.escalation): first to the
duty supervisors (值班长), then to the complaints management department (投诉管理部). A ticket has two clocks, so two
breaches at most; past the last level the queue stays. The assignee stays: the escalation puts the ticket under
someone's eye, it does not take it from the agent working it. These queues take tickets only so: they serve no
category and are no green channel, so routing never picks them."""

_OPEN = Ticket.status.in_(OPEN_STATES)
_URGENCY = case({priority: rank for rank, priority in enumerate(PRIORITIES)}, value=Ticket.priority)
"""Critical first, as a list sorted by priority has it."""


@dataclass(frozen=True)
class Routing:
    """Where a new ticket goes and to whom, with the reason its transfer record (转派记录) gives."""

    queue: str | None
    assignee: str | None
    reason: str | None


def _serves(queue: Queue, category: str) -> bool:
    return category in queue.categories or (queue.key_accounts and not queue.categories)


def pick_queue(queues: Sequence[Queue], category: str, key_account: bool) -> Queue | None:
    """The queue a new ticket of `category` goes to. Among several, one listing the category comes before a green
    channel taking all of them, then by id: the same ticket always lands in the same queue."""
    candidates = [q for q in queues if q.key_accounts and _serves(q, category)] if key_account else []
    if not candidates:
        candidates = [q for q in queues if not q.key_accounts and category in q.categories]
    return min(candidates, key=lambda q: (category not in q.categories, q.id), default=None)


async def agent_loads(session: AsyncSession, agents: Sequence[str]) -> dict[str, int]:
    """Open tickets assigned to each of `agents`, in any queue; 0 for one with none."""
    if not agents:
        return {}
    rows = await session.execute(
        select(Ticket.assignee, func.count()).where(Ticket.assignee.in_(agents), _OPEN).group_by(Ticket.assignee)
    )
    loads = dict.fromkeys(agents, 0)
    loads.update({agent: count for agent, count in rows})
    return loads


async def assign(session: AsyncSession, queue: Queue) -> str | None:
    """The agent of `queue` its strategy hands the next ticket to; None when every one is away or full. Loads are
    counted only where they decide: every agent's for least loaded, the limited ones' for a turn."""
    members = await session.scalars(
        select(QueueAgent).where(QueueAgent.queue_id == queue.id, QueueAgent.available.is_(True))
    )
    limits = {m.agent_id: m.max_open for m in members}
    counted = [a for a, limit in limits.items() if limit is not None] if queue.strategy == ROUND_ROBIN else list(limits)
    loads = dict.fromkeys(limits, 0) | await agent_loads(session, counted)
    # Sorted here, not by the database: a collation may order ids otherwise than the turn compares them.
    ready = sorted(agent for agent, limit in limits.items() if limit is None or loads[agent] < limit)
    if not ready:
        return None
    if queue.strategy == ROUND_ROBIN:
        return await take_turn(session, queue.id, ready)
    return min(ready, key=lambda agent: (loads[agent], agent))


async def take_turn(session: AsyncSession, queue_id: str, ready: Sequence[str]) -> str:
    """轮询: the first of `ready` after the queue's last assignee, recorded as the new last. In a transaction of its
    own, committed at once, with the queue row locked for that moment only: replicas opening tickets at the same
    time each get their own turn without every opening in the queue waiting for the one before it to commit. A
    ticket whose opening then fails has used a turn; its agent is passed over once."""
    async with AsyncSession(session.bind) as turn, turn.begin():
        last = await turn.scalar(select(Queue.last_assignee).where(Queue.id == queue_id).with_for_update())
        chosen = next((agent for agent in ready if last is None or agent > last), ready[0])
        await turn.execute(update(Queue).where(Queue.id == queue_id).values(last_assignee=chosen))
    return chosen


async def route(session: AsyncSession, ticket: Ticket, given: str | None) -> Routing:
    """Where the new `ticket` goes: its queue, and `given` (the agent named at open, who keeps it) or the agent the
    queue's strategy picks. No queue serves the category: it stays with `given` alone, as before queues. Least
    loaded takes no lock: two tickets opened at the same instant may go to the same agent, one ticket ahead until
    the next. Called before the caller's transaction writes: a round robin's turn is written in a transaction of
    its own, and SQLite has one writer at a time."""
    queue = pick_queue(list(await session.scalars(select(Queue))), ticket.category, ticket.key_account)
    if queue is None:
        return Routing(None, given, None)
    routed = (
        f"routed: key account, green channel {queue.id} (绿色通道)"
        if queue.key_accounts
        else f"routed: category {ticket.category}"
    )
    if given is not None:
        return Routing(queue.id, given, f"{routed}; assigned at open")
    assignee = await assign(session, queue)
    if assignee is None:
        return Routing(queue.id, None, f"{routed}; no agent available, waiting in the pool (工单池)")
    how = "round robin (轮询)" if queue.strategy == ROUND_ROBIN else "least loaded (最少负荷)"
    return Routing(queue.id, assignee, f"{routed}; assigned: {how}")


async def next_waiting(session: AsyncSession, queue_id: str) -> Ticket | None:
    """The ticket an agent pulling from the queue gets: unassigned and open, most urgent first, then the longest
    waiting. Locked, skipping one another agent is pulling at this moment (PostgreSQL)."""
    query = (
        select(Ticket)
        .where(Ticket.queue == queue_id, Ticket.assignee.is_(None), _OPEN)
        .order_by(_URGENCY, Ticket.creation_date, Ticket.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return await session.scalar(query)


@dataclass(frozen=True)
class Load:
    """A queue's backlog as it stands: open tickets, those nobody has, since when the oldest of those waits."""

    open: int
    unassigned: int
    oldest_unassigned: datetime | None


async def loads(session: AsyncSession, queue_ids: Sequence[str]) -> dict[str, Load]:
    """The backlog of each of `queue_ids` (all zero for an empty queue)."""
    unassigned = Ticket.assignee.is_(None)
    rows = await session.execute(
        select(
            Ticket.queue,
            func.count(),
            func.coalesce(func.sum(case((unassigned, 1), else_=0)), 0),
            func.min(case((unassigned, Ticket.creation_date))),
        )
        .where(Ticket.queue.in_(queue_ids), _OPEN)
        .group_by(Ticket.queue)
    )
    found = {queue: Load(total, waiting, oldest) for queue, total, waiting, oldest in rows}
    return {q: found.get(q, Load(0, 0, None)) for q in queue_ids}


async def save_queue(
    session: AsyncSession,
    queue_id: str,
    *,
    name: str,
    categories: list[str],
    key_accounts: bool,
    strategy: str,
    now: datetime,
) -> tuple[Queue, bool]:
    """Create the queue or replace its definition; its agents and its round-robin turn stay. True when created.
    An escalation queue may not be given categories or the green channel: routing would send new tickets there."""
    if queue_id in ESCALATION.values():
        if categories:
            raise InvalidInput(f"{queue_id} is an escalation queue: it serves no category", field="categories")
        if key_accounts:
            raise InvalidInput(f"{queue_id} is an escalation queue, not a green channel", field="keyAccounts")
    queue = await session.scalar(select(Queue).where(Queue.id == queue_id).with_for_update())
    created = queue is None
    if queue is None:
        queue = Queue(id=queue_id, created_at=now)
        session.add(queue)
    queue.name = name
    queue.categories = categories
    queue.key_accounts = key_accounts
    queue.strategy = strategy
    queue.updated_at = now
    await session.flush()
    return queue, created


async def save_member(
    session: AsyncSession, queue_id: str, agent_id: str, *, available: bool, max_open: int | None, now: datetime
) -> tuple[QueueAgent, bool]:
    """The agent joins the queue, or their availability and limit change. True when they joined."""
    member = await session.get(QueueAgent, (queue_id, agent_id), with_for_update=True)
    joined = member is None
    if member is None:
        member = QueueAgent(queue_id=queue_id, agent_id=agent_id, joined_at=now)
        session.add(member)
    member.available = available
    member.max_open = max_open
    await session.flush()
    return member, joined


# --- transfers (转派) and the pool (工单池) ----------------------------------------------------------------------


def transfer(
    session: AsyncSession,
    ticket: Ticket,
    queue: str | None,
    assignee: str | None,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Move the ticket to `queue` and `assignee`, recorded in its transfer history; False when both are as set."""
    if (queue, assignee) == (ticket.queue, ticket.assignee):
        return False
    session.add(transfer_record(ticket.id, (ticket.queue, ticket.assignee), (queue, assignee), actor, now, reason))
    ticket.queue = queue
    ticket.assignee = assignee
    return True


def transfer_record(
    ticket_id: str,
    source: tuple[str | None, str | None],
    target: tuple[str | None, str | None],
    actor: str,
    at: datetime,
    reason: str | None,
) -> TicketTransfer:
    """转派记录: from (queue, assignee) `source` to `target`."""
    return TicketTransfer(
        ticket_id=ticket_id,
        from_queue=source[0],
        to_queue=target[0],
        from_assignee=source[1],
        to_assignee=target[1],
        transferred_by=actor,
        transferred_at=at,
        reason=reason,
    )


class NotAMember(Conflict):
    """Only an agent who works the queue pulls from it; a supervisor adds them first."""

    slug = "not-a-member"
    title = "The caller does not work this queue"


class NothingWaiting(NotFound):
    slug = "nothing-waiting"
    title = "No unassigned open ticket waits in the queue"


async def pull_next(session: AsyncSession, queue_id: str, agent: str, now: datetime) -> Ticket:
    """The agent takes the queue's next waiting ticket (next_waiting), recorded as a transfer. Whether they are
    available or at their limit does not matter here: those only steer what routing hands out unasked."""
    if await session.get(QueueAgent, (queue_id, agent)) is None:
        raise NotAMember(f"{agent} does not work queue {queue_id}", field="queue")
    ticket = await next_waiting(session, queue_id)
    if ticket is None:
        raise NothingWaiting(f"No unassigned open ticket waits in queue {queue_id}", field="queue")
    transfer(session, ticket, queue_id, agent, actor=agent, now=now, reason=f"pulled from queue {queue_id} (工单池)")
    ticket.last_update = max(now, ticket.last_update)
    await session.flush()
    return ticket
