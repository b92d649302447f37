"""The SLA scanner: warns (SLA 预警) when a running clock passes 80% of its target and, when it reaches the target
(SLA 超时), marks it breached and escalates the ticket (升级) one level, to the queue ESCALATION names.

Each clock warns once and breaches once (`warned_at`, `breached_at`); a paused or stopped clock has neither
`warn_at` nor `due_at`, so it is never picked. A scan finds its clocks by those two indexed columns, a bounded batch
at a time, and stages its events in the caller's transaction like every other change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crm_kit.db import Database, utcnow
from crm_kit.events import CloudEvent, Contracts
from crm_kit.outbox import stage
from crm_kit.periodic import repeat
from crm_ticketing import events
from crm_ticketing.domain import clocks
from crm_ticketing.domain.queues import ESCALATION, transfer
from crm_ticketing.models import SlaClockRow, Ticket

ACTOR = "sla-escalation"
BATCH = 500
"""Clocks per query and round: a backlog (the scanner was down) is worked off in rounds, none of them long."""

WARNINGS = Counter(
    "crm_ticketing_sla_warnings_total", "SLA warnings (预警) sent, by clock and ticket priority", ["clock", "priority"]
)
BREACHES = Counter(
    "crm_ticketing_sla_breaches_total",
    "SLA breaches (超时) found and escalated, by clock and ticket priority",
    ["clock", "priority"],
)


@dataclass
class ScanResult:
    """(ticket id, clock, priority) of what one scan warned and breached; `full` when a query filled its batch, so
    more may be waiting."""

    warned: list[tuple[str, str, str]] = field(default_factory=list)
    breached: list[tuple[str, str, str]] = field(default_factory=list)
    full: bool = False


async def _due(
    session: AsyncSession,
    instant: InstrumentedAttribute[datetime | None],
    done: InstrumentedAttribute[datetime | None],
    now: datetime,
) -> list[SlaClockRow]:
    """Running clocks whose `instant` has come and that are not `done` yet, oldest first, a batch at most."""
    query = select(SlaClockRow).where(instant <= now, done.is_(None)).order_by(instant).limit(BATCH)
    return list(await session.scalars(query))


def _crossings(rows: Iterable[SlaClockRow], now: datetime) -> list[tuple[datetime, int, SlaClockRow]]:
    """(instant, 0 warning / 1 breach, clock) of every threshold crossed by `now` and not yet told, in time order."""
    found = []
    for row in rows:
        if row.warned_at is None and row.warn_at is not None and row.warn_at <= now:
            found.append((row.warn_at, 0, row))
        if row.breached_at is None and row.due_at is not None and row.due_at <= now:
            found.append((row.due_at, 1, row))
    return sorted(found, key=lambda crossing: (crossing[0], crossing[1], crossing[2].ticket_id, crossing[2].kind))


async def scan(session: AsyncSession, contracts: Contracts, now: datetime) -> ScanResult:
    """Warn and breach every running clock whose instant has come by `now`; a clock past both (the scanner was
    down) warns, then breaches. Events carry the instant each threshold was crossed, not `now`."""
    warning = await _due(session, SlaClockRow.warn_at, SlaClockRow.warned_at, now)
    breaching = await _due(session, SlaClockRow.due_at, SlaClockRow.breached_at, now)
    candidates = {row.ticket_id for row in (*warning, *breaching)}
    # The tickets locked first, as a status change locks its ticket before its clocks (one lock order, no
    # deadlock); a ticket being changed or scanned by another replica is skipped until the next round. The clocks
    # are then read again under the lock: a change committed meanwhile may have paused or stopped them.
    tickets = {
        t.id: t
        for t in await session.scalars(
            select(Ticket).where(Ticket.id.in_(candidates)).with_for_update(skip_locked=True)
        )
    }
    fresh = select(SlaClockRow).where(SlaClockRow.ticket_id.in_(tickets)).execution_options(populate_existing=True)
    rows = {(row.ticket_id, row.kind): row for row in await session.scalars(fresh)}
    result = ScanResult(full=BATCH in (len(warning), len(breaching)))
    staged: list[CloudEvent] = []
    for at, rank, row in _crossings(rows.values(), now):
        ticket = tickets[row.ticket_id]
        if rank == 0:
            row.warned_at = at
            event_type = events.SLA_WARNING
            result.warned.append((ticket.id, row.kind, ticket.priority))
        else:
            row.breached_at = at
            _escalate(session, ticket, row.kind, now)
            event_type = events.SLA_BREACHED
            result.breached.append((ticket.id, row.kind, ticket.priority))
        clock = clocks.to_clock(row)
        staged.append(
            events.sla_crossed(
                event_type,
                ticket,
                at,
                clock=row.kind,
                due_at=row.due_at,
                elapsed=clock.elapsed(at),
                target=clock.target,
            )
        )
    await session.flush()
    await stage(session, contracts, staged)
    return result


def _escalate(session: AsyncSession, ticket: Ticket, kind: str, now: datetime) -> None:
    """One level up, to that level's queue (ESCALATION), recorded as a transfer (转派) naming the clock."""
    ticket.escalation_level += 1
    queue = ESCALATION.get(ticket.escalation_level, ticket.queue)
    reason = f"SLA {kind} breached (超时升级), escalation level {ticket.escalation_level}"
    transfer(session, ticket, queue, ticket.assignee, actor=ACTOR, now=now, reason=reason)
    ticket.last_update = max(now, ticket.last_update)


async def run_scanner(db: Database, contracts: Contracts, every: float) -> None:
    """Scan every `every` seconds, each round in its own transaction, again at once while batches come back full."""

    async def round_() -> None:
        while True:
            async with db.sessions.begin() as session:
                result = await scan(session, contracts, utcnow())
            for _, kind, priority in result.warned:
                WARNINGS.labels(kind, priority).inc()
            for _, kind, priority in result.breached:
                BREACHES.labels(kind, priority).inc()
            if not result.full:
                return

    await repeat(round_, every, what="SLA scan", wait_first=True)
