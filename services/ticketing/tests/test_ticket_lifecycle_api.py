"""The lifecycle over HTTP: every move the TMF621 states allow and the 409 for every other (with the allowed ones),
the 7-day reopen, and the SLA clocks that pause in pending and held, resume after them, stop at the first response
and the resolution, and restart on a reopen, on business hours and round the clock. The test's clock is the
service's: a weekend passes in one line."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from crm_ticketing.domain.clocks import to_clock
from crm_ticketing.domain.sla import SHANGHAI
from crm_ticketing.models import SlaClockRow

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
PROBLEM = "application/problem+json"
STATES = ("acknowledged", "inProgress", "pending", "held", "resolved", "closed", "rejected", "cancelled")
ALLOWED = {
    "acknowledged": ["inProgress", "pending", "held", "resolved", "rejected", "cancelled"],
    "inProgress": ["pending", "held", "resolved", "cancelled"],
    "pending": ["inProgress", "held", "resolved", "cancelled"],
    "held": ["inProgress", "pending", "resolved", "cancelled"],
    "resolved": ["inProgress", "closed"],
    "closed": ["inProgress"],
    "rejected": [],
    "cancelled": [],
}
"""TMF621's states as this CRM runs them, written out here rather than read from the code under test."""
PATH_TO = {
    "acknowledged": [],
    "inProgress": ["inProgress"],
    "pending": ["pending"],
    "held": ["held"],
    "resolved": ["resolved"],
    "closed": ["resolved", "closed"],
    "rejected": ["rejected"],
    "cancelled": ["cancelled"],
}


def sh(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A 2026 instant on the Shanghai wall clock."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def shown(moment: datetime) -> str:
    """How the API shows an instant: Shanghai time with its offset."""
    return moment.astimezone(SHANGHAI).isoformat()


def assert_conflict(r: httpx.Response, current: str, allowed: list[str]) -> dict[str, Any]:
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = r.json()
    assert problem["type"] == "urn:telecom-crm:problem:illegal-transition"
    assert (problem["field"], problem["current_status"], problem["allowed"]) == ("status", current, allowed)
    return problem


async def clock_rows(service, ticket_id: str) -> dict[str, SlaClockRow]:
    async with service.database() as db, db.sessions() as session:
        rows = await session.scalars(select(SlaClockRow).where(SlaClockRow.ticket_id == ticket_id))
        return {row.kind: row for row in rows}


async def test_every_move_is_allowed_or_refused_with_the_moves_that_are(service):
    for state in STATES:
        for target in STATES:
            ticket = (await service.create())["id"]
            for step in PATH_TO[state]:
                await service.move(ticket, step)
            r = await service.patch(ticket, {"status": target, "statusChangeReason": f"→ {target}"})
            if target in ALLOWED[state]:
                assert r.status_code == 200, (state, target, r.text)
                assert (r.json()["status"], r.json()["statusChangeReason"]) == (target, f"→ {target}")
            else:
                assert_conflict(r, state, ALLOWED[state])
                after = await service.get(ticket)
                assert after["status"] == state
                assert [c["status"] for c in after["statusChange"]] == ["acknowledged", *PATH_TO[state]]


async def test_a_refused_move_changes_nothing_else_in_the_patch(service):
    ticket = (await service.create())["id"]
    await service.move(ticket, "rejected", "非本公司业务")
    r = await service.patch(ticket, {"status": "inProgress", "priority": "critical", "note": [{"text": "重新受理"}]})
    problem = assert_conflict(r, "rejected", [])
    assert "final" in problem["detail"]
    after = await service.get(ticket)
    assert (after["priority"], len(after["note"])) == ("medium", 1)


async def test_a_ticket_through_its_life_keeps_its_history_newest_last(service):
    ticket = await service.create()
    tid = ticket["id"]
    steps = [
        ("inProgress", "已联系客户", 20),
        ("pending", "等待客户提供话单截图", 40),
        ("inProgress", "客户已提供", 60 * 24),
        ("resolved", "已退还30元", 60),
        ("closed", "客户确认", 60 * 24),
    ]
    for status, reason, minutes in steps:
        service.clock.advance(minutes=minutes)
        moved = await service.move(tid, status, reason)
        assert (moved["status"], moved["statusChangeReason"]) == (status, reason)
        assert moved["statusChangeDate"] == moved["lastUpdate"] == shown(service.clock.now)
    closed = await service.get(tid)
    assert [(c["status"], c["changeReason"]) for c in closed["statusChange"]] == [
        ("acknowledged", None),
        *[(status, reason) for status, reason, _ in steps],
    ]
    changed = [datetime.fromisoformat(c["changeDate"]) for c in closed["statusChange"]]
    assert changed == sorted(changed)
    resolved_at = changed[4]
    assert closed["resolutionDate"] == shown(resolved_at)
    # the first response was the move to inProgress, 20 minutes in: its deadline stays what it was
    assert closed["firstResponseDueDate"] == ticket["firstResponseDueDate"]
    assert closed["slaBreached"] is False


async def test_reopen_within_seven_days_of_the_resolution_and_not_after(service):
    """Round the clock (a medium broadband fault: 2 h first response, 24 h resolution), so the arithmetic is plain."""
    fault = {"category": "broadband_fault", "ticketType": "trouble"}
    early = (await service.create(**fault))["id"]
    late = (await service.create(**fault))["id"]
    service.clock.set(sh(11, 23, 10, 30))
    for tid in (early, late):
        await service.move(tid, "inProgress")
    service.clock.set(sh(11, 23, 14))  # 4 h of the 24 spent
    for tid in (early, late):
        resolved = await service.move(tid, "resolved", "已更换光猫")
        assert resolved["resolutionDate"] == "2026-11-23T14:00:00+08:00"
        assert resolved["resolutionDueDate"] == "2026-11-24T10:00:00+08:00"  # the deadline it met
    service.clock.set(sh(11, 24, 9))
    await service.move(early, "closed", "客户确认")

    service.clock.set(sh(11, 30, 13, 59))  # 7 days less a minute after the resolution
    reopened = await service.move(early, "inProgress", "客户反馈仍然断网")
    assert reopened["resolutionDate"] is None
    # the resolution clock runs on from where it stopped: 20 h left from now
    assert reopened["resolutionDueDate"] == "2026-12-01T09:59:00+08:00"
    rows = await clock_rows(service, early)
    assert rows["resolution"].stopped_at is None
    assert rows["resolution"].due_at == sh(12, 1, 9, 59)
    assert rows["first_response"].due_at is None

    service.clock.set(sh(11, 30, 14, 1))  # 7 days and a minute
    assert_conflict(await service.patch(late, {"status": "inProgress"}), "resolved", ["closed"])
    await service.move(late, "closed", "超过重开期限")
    assert_conflict(await service.patch(late, {"status": "inProgress"}), "closed", [])


async def test_pending_pauses_the_clock_over_a_weekend_of_business_hours(service):
    """A medium billing dispute counts business hours (Mon-Fri 09:00-18:00 Shanghai): 2 h to a first response,
    2 business days (18 h) to the resolution."""
    service.clock.set(sh(11, 20, 17))  # Friday 17:00
    ticket = await service.create()
    tid = ticket["id"]
    assert ticket["firstResponseDueDate"] == "2026-11-23T10:00:00+08:00"  # 1 h on Friday, 1 on Monday
    assert ticket["resolutionDueDate"] == "2026-11-24T17:00:00+08:00"  # 1 h Friday, 9 Monday, 8 Tuesday

    service.clock.set(sh(11, 20, 17, 30))
    waiting = await service.move(tid, "pending", "等待客户提供缴费凭证")
    assert waiting["firstResponseDueDate"] == "2026-11-23T10:00:00+08:00"  # answered in time: the deadline it met
    assert waiting["resolutionDueDate"] is None  # paused: no deadline runs
    rows = await clock_rows(service, tid)
    for kind in ("first_response", "resolution"):
        assert rows[kind].accumulated_us == 30 * 60 * 1_000_000, kind
        assert rows[kind].due_at is None, kind
    assert rows["first_response"].stopped_at == sh(11, 20, 17, 30)
    assert rows["resolution"].paused_at == sh(11, 20, 17, 30)

    service.clock.set(sh(11, 21, 12))  # Saturday noon
    assert (await service.get(tid))["resolutionDueDate"] is None

    service.clock.set(sh(11, 23, 10))  # Monday 10:00, the customer calls back
    resumed = await service.move(tid, "inProgress", "客户已提供凭证")
    # 17.5 h left: Monday 10-18 (8 h), Tuesday 9-18 (9 h), Wednesday 09:00-09:30
    assert resumed["resolutionDueDate"] == "2026-11-25T09:30:00+08:00"
    rows = await clock_rows(service, tid)
    assert rows["resolution"].running_since == sh(11, 23, 10)
    assert rows["resolution"].due_at == sh(11, 25, 9, 30)

    service.clock.set(sh(11, 23, 12))
    assert to_clock(rows["resolution"]).elapsed(service.clock.now) == timedelta(hours=2, minutes=30)

    service.clock.set(sh(11, 25, 9))  # Wednesday 09:00: 17.5 h of business time spent, in time
    done = await service.move(tid, "resolved", "已退费")
    assert (done["resolutionDueDate"], done["slaBreached"]) == ("2026-11-25T09:30:00+08:00", False)
    rows = await clock_rows(service, tid)
    assert rows["resolution"].accumulated_us == int(timedelta(hours=17, minutes=30) / timedelta(microseconds=1))
    assert rows["resolution"].due_at is None


async def test_held_pauses_too_and_a_late_first_response_stays_breached(service):
    """A critical coverage outage counts round the clock: 15 minutes to a first response, 4 hours to resolve."""
    ticket = (await service.create(category="network_coverage", priority="critical", ticketType="trouble"))["id"]
    service.clock.set(sh(11, 23, 10, 14))
    assert (await service.get(ticket))["slaBreached"] is False
    service.clock.set(sh(11, 23, 10, 15))
    assert (await service.get(ticket))["slaBreached"] is True  # the target reached is breached

    service.clock.set(sh(11, 23, 10, 20))
    taken = await service.move(ticket, "inProgress")
    assert (taken["firstResponseDueDate"], taken["slaBreached"]) == ("2026-11-23T10:15:00+08:00", True)
    assert taken["resolutionDueDate"] == "2026-11-23T14:00:00+08:00"

    service.clock.set(sh(11, 23, 11))  # 1 h of the 4 spent
    held = await service.move(ticket, "held", "等待铁塔公司处理")
    assert held["resolutionDueDate"] is None
    service.clock.set(sh(11, 25, 11))
    assert (await service.move(ticket, "pending", "等待客户在家测试"))["resolutionDueDate"] is None
    back = await service.move(ticket, "inProgress", "铁塔已修复")
    assert back["resolutionDueDate"] == "2026-11-25T14:00:00+08:00"
    rows = await clock_rows(service, ticket)
    assert rows["resolution"].due_at == sh(11, 25, 14)
    assert rows["first_response"].breached_at == sh(11, 23, 10, 15)


async def test_resolving_straight_from_acknowledged_stops_both_clocks(service):
    ticket = (await service.create())["id"]
    service.clock.advance(minutes=45)
    done = await service.move(ticket, "resolved", "当场解答")
    assert done["resolutionDate"] == "2026-11-23T10:45:00+08:00"
    rows = await clock_rows(service, ticket)
    for kind in ("first_response", "resolution"):
        assert rows[kind].stopped_at == sh(11, 23, 10, 45), kind
        assert rows[kind].accumulated_us == 45 * 60 * 1_000_000, kind
        assert rows[kind].due_at is None, kind
