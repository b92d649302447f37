"""A ticket's two SLA clocks as rows of `sla_clock`: first response (首次响应) and resolution (处理时限), started
with the ticket and paused, resumed, stopped or restarted as its status moves.

The rules, by status move:
- the first move out of acknowledged is the first response: that clock stops, even when the move is to pending
  (asking the customer for something is answering them);
- into pending (待客户反馈) or held (挂起) the running clocks pause, back out of them they resume;
- out of the open states (resolved, rejected, cancelled) the resolution clock stops;
- a reopen (resolved or closed → inProgress) restarts the resolution clock from where it stopped: the time already
  spent still counts, so a ticket reopened after a bad fix does not get a fresh deadline, and the time it sat
  resolved does not count against the team.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_ticketing.domain.lifecycle import ACKNOWLEDGED, OPEN_STATES, is_reopen, pauses_clock
from crm_ticketing.domain.sla import DEFAULT_CALENDARS, SlaClock, SlaPolicy
from crm_ticketing.models import SlaClockRow

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
_MICROSECOND = timedelta(microseconds=1)


def to_clock(row: SlaClockRow) -> SlaClock:
    return SlaClock(
        target=timedelta(seconds=row.target_seconds),
        calendar=DEFAULT_CALENDARS[row.calendar],
        started_at=row.started_at,
        accumulated=row.accumulated_us * _MICROSECOND,
        running_since=row.running_since,
        paused_at=row.paused_at,
        stopped_at=row.stopped_at,
        breached_at=row.breached_at,
    )


def store(row: SlaClockRow, clock: SlaClock, now: datetime) -> None:
    """Write `clock` into `row`, `due_at` and `warn_at` with it: the scanner finds running clocks by them."""
    row.accumulated_us = clock.accumulated // _MICROSECOND
    row.running_since = clock.running_since
    row.paused_at = clock.paused_at
    row.stopped_at = clock.stopped_at
    row.breached_at = clock.breached_at
    row.due_at = clock.due_at(now)
    row.warn_at = clock.warns_at(now)


def start(ticket_id: str, policy: SlaPolicy, now: datetime) -> list[SlaClockRow]:
    """Both clocks of a new ticket, running from `now` on the policy's calendar."""
    rows = []
    for kind, target in ((FIRST_RESPONSE, policy.first_response), (RESOLUTION, policy.resolution)):
        clock = SlaClock.start(target, DEFAULT_CALENDARS[policy.calendar], now)
        row = SlaClockRow(
            ticket_id=ticket_id,
            kind=kind,
            target_seconds=int(target.total_seconds()),
            calendar=policy.calendar,
            started_at=clock.started_at,
        )
        store(row, clock, now)
        rows.append(row)
    return rows


async def load(session: AsyncSession, ticket_id: str) -> dict[str, SlaClockRow]:
    rows = await session.scalars(select(SlaClockRow).where(SlaClockRow.ticket_id == ticket_id))
    return {row.kind: row for row in rows}


def _stops(kind: str, from_state: str, to_state: str) -> bool:
    if kind == FIRST_RESPONSE:
        return from_state == ACKNOWLEDGED
    return to_state not in OPEN_STATES


def _restarted(clock: SlaClock, at: datetime) -> SlaClock:
    """A stopped clock running again from `at`, with the time it had counted (and its breach, if any) kept."""
    return replace(clock, stopped_at=None, running_since=at)


def follow(rows: dict[str, SlaClockRow], from_state: str, to_state: str, at: datetime) -> None:
    """Move the clocks along with a status change from `from_state` to `to_state` at `at`."""
    reopen = is_reopen(from_state, to_state)
    for kind, row in rows.items():
        clock = to_clock(row)
        if clock.stopped:
            if not (reopen and kind == RESOLUTION):
                continue
            clock = _restarted(clock, at)
        elif _stops(kind, from_state, to_state):
            clock = clock.stop(at)
        elif pauses_clock(to_state):
            if clock.paused:
                continue
            clock = clock.pause(at)
        elif clock.paused:
            clock = clock.resume(at)
        else:
            continue
        store(row, clock, at)


def deadline(clock: SlaClock, now: datetime) -> datetime | None:
    """The deadline to show: while running, when it breaches; once stopped, the deadline it was held to (when it
    breached, or when it would have had it kept running); none while paused, as it cannot breach then."""
    if clock.stopped_at is not None:
        return clock.breached_at or clock.calendar.add(clock.stopped_at, clock.remaining(clock.stopped_at))
    return clock.due_at(now)
