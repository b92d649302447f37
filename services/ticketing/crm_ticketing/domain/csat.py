"""The satisfaction survey (满意度回访, CSAT): recorded once per ticket after its resolution, and averaged per agent,
queue or category for the supervisors.

Plain functions over the caller's session: they flush, the caller commits, and the event they stage in the outbox
goes out with that commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, get_args

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.errors import Conflict
from crm_kit.events import Contracts
from crm_kit.outbox import stage
from crm_ticketing import events
from crm_ticketing.domain.lifecycle import CLOSED, RESOLVED
from crm_ticketing.models import Ticket
from crm_ticketing.schemas.trouble_ticket import CsatInput

SURVEYED_STATES = (RESOLVED, CLOSED)
"""The customer is asked how it went once it is over: a rating of a ticket still being worked means nothing yet."""
SATISFIED = 4
"""Scores from here up count as satisfied (满意: 4 satisfied, 5 very satisfied)."""

GroupBy = Literal["agent", "queue", "category"]
GROUP_BYS: tuple[GroupBy, ...] = get_args(GroupBy)
_GROUP_COLUMNS = {"agent": Ticket.assignee, "queue": Ticket.queue, "category": Ticket.category}

AVERAGE_PLACES = Decimal("0.01")


class NotResolvedYet(Conflict):
    """A survey of a ticket that is not resolved or closed; `current_status` says where it stands."""

    slug = "csat-before-resolution"
    title = "The satisfaction survey follows the resolution"


class AlreadySurveyed(Conflict):
    """A ticket is surveyed once: the first answer stands, a second is refused rather than overwriting it."""

    slug = "csat-already-recorded"
    title = "The ticket's satisfaction was already recorded"


async def record(
    session: AsyncSession, contracts: Contracts, ticket: Ticket, survey: CsatInput, *, now: datetime
) -> None:
    """Record the customer's rating on the (locked) ticket and stage ticketing.ticket.csat_recorded.v1."""
    if ticket.status not in SURVEYED_STATES:
        raise NotResolvedYet(
            f"Ticket {ticket.id} is {ticket.status}: the satisfaction survey follows the resolution "
            f"({' or '.join(SURVEYED_STATES)})",
            field="status",
            current_status=ticket.status,
        )
    if ticket.csat_score is not None:
        raise AlreadySurveyed(
            f"Ticket {ticket.id} was already rated {ticket.csat_score}; the first survey stands",
            field="score",
            recorded_at=ticket.csat_at.isoformat() if ticket.csat_at else None,
        )
    at = max(now, ticket.last_update)
    ticket.csat_score = survey.score
    ticket.csat_comment = survey.comment or None
    ticket.csat_at = at
    ticket.last_update = at
    await session.flush()
    await stage(session, contracts, [events.csat_recorded(ticket, at)])


@dataclass(frozen=True)
class CsatGroup:
    """One group of the report: `average` and `satisfied` (the share of 4–5) are exact decimals, never floats."""

    group: str | None
    count: int
    average: Decimal
    satisfied: Decimal


def _ratio(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)


async def report(
    session: AsyncSession, by: GroupBy, *, since: datetime | None, until: datetime | None
) -> list[CsatGroup]:
    """Surveys recorded in [since, until), per agent, queue or category, ordered by group with the unassigned (null)
    last. Sums and counts come from SQL as integers; the division is done here in Decimal."""
    column = _GROUP_COLUMNS[by]
    query = (
        select(
            column,
            func.count(),
            func.sum(Ticket.csat_score),
            func.sum(case((Ticket.csat_score >= SATISFIED, 1), else_=0)),
        )
        .where(Ticket.csat_score.is_not(None))
        .group_by(column)
        .order_by(column.asc().nulls_last())
    )
    if since is not None:
        query = query.where(Ticket.csat_at >= since)
    if until is not None:
        query = query.where(Ticket.csat_at < until)
    return [
        CsatGroup(group=group, count=count, average=_ratio(total, count), satisfied=_ratio(happy, count))
        for group, count, total, happy in (await session.execute(query)).all()
    ]
