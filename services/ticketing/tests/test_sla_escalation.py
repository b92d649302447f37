"""The SLA scanner on a real database, driven by the `now` each test picks: 80% warnings (预警) at the instant the
clock's calendar says, breaches (超时) that escalate (升级) to the supervisors with a transfer, nothing while paused
or once stopped, nothing twice, events valid against their contracts; and the scanner running inside the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from crm_kit.db import Database, outbox_table, upgrade_async, utcnow
from crm_kit.events import CloudEvent, Contracts, load_contracts
from crm_kit.settings import find_contracts_dir
from crm_ticketing.domain import escalation, tickets
from crm_ticketing.domain.sla import SHANGHAI
from crm_ticketing.models import SlaClockRow, Ticket, TicketTransfer
from crm_ticketing.schemas.trouble_ticket import TroubleTicketCreate

MIGRATIONS = Path(escalation.__file__).parent.parent / "migrations"
WARNING = "ticketing.ticket.sla_warning.v1"
BREACHED = "ticketing.ticket.sla_breached.v1"
TICK = timedelta(microseconds=1)


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A 2026 instant on the Shanghai wall clock."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


class Desk:
    """The domain over one migrated database: open tickets, move them, scan, read back what was staged."""

    def __init__(self, db: Database, contracts: Contracts) -> None:
        self.db = db
        self.contracts = contracts

    async def open(self, at: datetime, *, category: str, priority: str, queue: str | None = None) -> str:
        body = TroubleTicketCreate.model_validate(
            {
                "description": "小区4G信号时有时无",
                "ticketType": "complaint",
                "priority": priority,
                "category": category,
                "relatedParty": [{"id": "C1", "role": "customer", "@referredType": "Individual"}],
            }
        )
        async with self.db.sessions.begin() as session:
            ticket = await tickets.open_ticket(session, self.contracts, body, actor="agent-0001", now=at)
            ticket.queue = queue
            return ticket.id

    async def move(self, ticket_id: str, status: str, at: datetime) -> None:
        async with self.db.sessions.begin() as session:
            ticket = await session.get_one(Ticket, ticket_id)
            await tickets.change_status(session, self.contracts, ticket, status, None, actor="agent-0001", now=at)

    async def scan(self, now: datetime) -> escalation.ScanResult:
        async with self.db.sessions.begin() as session:
            return await escalation.scan(session, self.contracts, now)

    async def sla_events(self) -> list[CloudEvent]:
        """Warnings and breaches staged so far, in outbox order, each checked against its contract."""
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(outbox_table.c.payload)
                .where(outbox_table.c.type.in_((WARNING, BREACHED)))
                .order_by(outbox_table.c.seq)
            )
            staged = [CloudEvent.model_validate_json(payload) for (payload,) in rows]
        for event in staged:
            self.contracts.validate_event(event)
        return staged

    async def load(self, ticket_id: str) -> tuple[Ticket, list[TicketTransfer], dict[str, SlaClockRow]]:
        """The ticket, the escalation's transfers (not the routing's at the opening) and the clocks."""
        async with self.db.sessions() as session:
            ticket = await session.get_one(Ticket, ticket_id)
            escalated = TicketTransfer.transferred_by == escalation.ACTOR
            transfers = list(
                await session.scalars(select(TicketTransfer).where(TicketTransfer.ticket_id == ticket_id, escalated))
            )
            rows = await session.scalars(select(SlaClockRow).where(SlaClockRow.ticket_id == ticket_id))
            return ticket, transfers, {row.kind: row for row in rows}


@pytest_asyncio.fixture
async def desk(database_url: Any) -> Any:
    url = await database_url("ticketing")
    await upgrade_async(url, MIGRATIONS)
    db = Database(url)
    try:
        yield Desk(db, load_contracts(find_contracts_dir()))
    finally:
        await db.dispose()


def summary(events: list[CloudEvent]) -> list[tuple[str, str, str]]:
    return [(e.type, e.data["clock"], e.data["occurred_at"]) for e in events]


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def test_a_network_fault_warns_at_80_percent_and_breaches_into_the_supervisors_queue(desk):
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high", queue="noc-field")
    warn, due = opened + timedelta(minutes=24), opened + timedelta(minutes=30)  # 80% and 100% of 30 min, 7×24

    assert (await desk.scan(warn - TICK)).warned == []
    assert (await desk.scan(warn)).warned == [(ticket_id, "first_response", "high")]
    assert (await desk.scan(due - TICK)).breached == []
    assert (await desk.scan(due)).breached == [(ticket_id, "first_response", "high")]

    warning, breach = await desk.sla_events()
    common = {"ticket_id": ticket_id, "customer_id": "C1", "clock": "first_response", "due_at": utc(due)}
    common |= {"target_seconds": 1800, "priority": "high", "category": "network_coverage", "assignee": None}
    assert warning.type == WARNING and warning.subject == "C1" and warning.time == warn
    assert warning.data == {
        **common,
        "occurred_at": utc(warn),
        "elapsed_seconds": 1440,
        "escalation_level": 0,
        "queue": "noc-field",
    }
    assert breach.type == BREACHED and breach.time == due
    assert breach.data == {
        **common,
        "occurred_at": utc(due),
        "elapsed_seconds": 1800,
        "escalation_level": 1,
        "queue": "supervisors",
    }
    ticket, transfers, rows = await desk.load(ticket_id)
    assert (ticket.escalation_level, ticket.queue) == (1, "supervisors")
    [moved] = transfers
    assert (moved.from_queue, moved.to_queue, moved.transferred_by, moved.transferred_at) == (
        "noc-field",
        "supervisors",
        "sla-escalation",
        due,
    )
    assert "first_response" in (moved.reason or "")
    assert (rows["first_response"].warned_at, rows["first_response"].breached_at) == (warn, due)
    assert (rows["resolution"].warned_at, rows["resolution"].breached_at) == (None, None)


async def test_the_resolution_breach_escalates_to_complaints_management(desk):
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high")
    await desk.move(ticket_id, "inProgress", opened + timedelta(minutes=5))

    result = await desk.scan(opened + timedelta(hours=8))

    assert result.breached == [(ticket_id, "resolution", "high")]
    ticket, transfers, _ = await desk.load(ticket_id)
    assert (ticket.escalation_level, ticket.queue) == (1, "supervisors")
    assert [t.to_queue for t in transfers] == ["supervisors"]
    assert summary(await desk.sla_events()) == [
        (WARNING, "resolution", utc(opened + timedelta(hours=6, minutes=24))),
        (BREACHED, "resolution", utc(opened + timedelta(hours=8))),
    ]


async def test_a_scanner_that_was_down_sends_both_warnings_before_breaches_in_time_order_once(desk):
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high")
    late = opened + timedelta(days=1)

    first = await desk.scan(late)
    again = await desk.scan(late + timedelta(hours=1))

    assert len(first.warned) == len(first.breached) == 2 and not first.full
    assert (again.warned, again.breached) == ([], [])
    assert summary(await desk.sla_events()) == [
        (WARNING, "first_response", utc(opened + timedelta(minutes=24))),
        (BREACHED, "first_response", utc(opened + timedelta(minutes=30))),
        (WARNING, "resolution", utc(opened + timedelta(hours=6, minutes=24))),
        (BREACHED, "resolution", utc(opened + timedelta(hours=8))),
    ]
    ticket, transfers, _ = await desk.load(ticket_id)
    assert (ticket.escalation_level, ticket.queue) == (2, "complaints-management")
    assert [(t.from_queue, t.to_queue) for t in sorted(transfers, key=lambda t: t.seq)] == [
        (None, "supervisors"),
        ("supervisors", "complaints-management"),
    ]
    events = await desk.sla_events()
    assert [e.data["escalation_level"] for e in events] == [0, 1, 1, 2]


async def test_a_billing_dispute_opened_friday_17_00_does_not_warn_over_the_weekend_but_on_monday(desk):
    # medium billing dispute on business hours (09:00-18:00 Shanghai): first response 2 h, 80% = 1h36m: Friday
    # 17:00-18:00 gives 1 h, the other 36 min come on Monday from 09:00. Resolution 18 business hours, 80% = 14h24m:
    # Friday 1 h + Monday 9 h + Tuesday 4h24m.
    opened = sh(11, 27, 17)
    ticket_id = await desk.open(opened, category="billing_dispute", priority="medium")
    monday_warn = sh(11, 30, 9, 36)

    for quiet in (sh(11, 27, 18), sh(11, 28, 12), sh(11, 29, 23, 59), monday_warn - TICK):
        assert (await desk.scan(quiet)).warned == []
    assert (await desk.scan(monday_warn)).warned == [(ticket_id, "first_response", "medium")]
    assert (await desk.scan(sh(12, 1, 13, 24) - TICK)).warned == []
    assert (await desk.scan(sh(12, 1, 13, 24))).warned == [(ticket_id, "resolution", "medium")]
    assert summary(await desk.sla_events()) == [
        (WARNING, "first_response", utc(monday_warn)),
        (BREACHED, "first_response", utc(sh(11, 30, 10))),
        (WARNING, "resolution", utc(sh(12, 1, 13, 24))),
    ]
    first = (await desk.sla_events())[0]
    assert (first.data["elapsed_seconds"], first.data["due_at"]) == (96 * 60, utc(sh(11, 30, 10)))


async def test_a_pending_ticket_never_warns_while_paused_and_warns_after_it_resumes(desk):
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high")
    await desk.move(ticket_id, "pending", opened + timedelta(hours=1))  # the first response; resolution pauses

    assert (await desk.scan(opened + timedelta(days=10))).warned == []
    assert [e.data["clock"] for e in await desk.sla_events()] == []

    resumed = opened + timedelta(days=10, hours=1)
    await desk.move(ticket_id, "inProgress", resumed)
    assert (await desk.scan(resumed + timedelta(hours=5, minutes=24) - TICK)).warned == []
    assert (await desk.scan(resumed + timedelta(hours=5, minutes=24))).warned == [(ticket_id, "resolution", "high")]


async def test_a_stopped_clock_never_breaches(desk):
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high")
    await desk.move(ticket_id, "inProgress", opened + timedelta(minutes=25))  # after the warning instant, unscanned
    await desk.move(ticket_id, "resolved", opened + timedelta(hours=7))

    result = await desk.scan(opened + timedelta(days=30))

    assert (result.warned, result.breached) == ([], [])
    ticket, transfers, rows = await desk.load(ticket_id)
    assert (ticket.escalation_level, transfers) == (0, [])
    assert all(row.breached_at is None and row.warn_at is None for row in rows.values())


async def test_a_ticket_being_changed_is_left_for_the_next_round_then_scanned(desk):
    """PostgreSQL: a status change holds its ticket's row lock; the scan skips that ticket rather than writing its
    clocks under the change's feet, and takes it at the next round. (SQLite has one writer at a time.)"""
    if desk.db.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    opened = sh(11, 23, 10)
    ticket_id = await desk.open(opened, category="network_coverage", priority="high")
    later = opened + timedelta(days=1)
    async with desk.db.sessions.begin() as changing:
        await changing.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
        skipped = await desk.scan(later)
    assert (skipped.warned, skipped.breached) == ([], [])

    taken = await desk.scan(later)
    assert {kind for _, kind, _ in taken.breached} == {"first_response", "resolution"}


async def test_the_scanner_in_the_service_publishes_a_due_clocks_events(start_ticketing, ticketing_settings):
    ticketing_settings.sla_scan_seconds = 0.2
    async with start_ticketing() as service:
        service.clock.set(utcnow() - timedelta(hours=1))  # first response (30 min) due, resolution (8 h) not
        ticket_id = (await service.create("C7", category="network_coverage", priority="high"))["id"]

        published = await service.ticket_events(expect=3)

        assert [(e.type, e.data["ticket_id"], e.data.get("clock")) for _, e in published] == [
            ("ticketing.ticket.created.v1", ticket_id, None),
            (WARNING, ticket_id, "first_response"),
            (BREACHED, ticket_id, "first_response"),
        ]
        for key, event in published:
            service.contracts.validate_event(event)
            assert key == "C7"
        service.clock.set(utcnow())
        shown = await service.get(ticket_id)
        assert (shown["escalationLevel"], shown["slaBreached"], shown["queue"]) == (1, True, "supervisors")
