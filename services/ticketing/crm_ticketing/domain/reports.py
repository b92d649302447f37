"""Service-quality reports (服务质量报表) of the ticketing service, as the operators' own reports count them:
open tickets by priority, the backlog by age, SLA attainment (SLA 达标率), first-contact resolution (一次解决率)
and repeat complaints (重复投诉).

Counts come from SQL as integers; ratios are divided here, in Decimal, so a report never shows 0.6666666666666666.
Each query reads an indexed column first (status, resolution_date, creation_date), so the reports stay cheap with
millions of closed tickets in the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from prometheus_client import Gauge
from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.db import Database, utcnow
from crm_kit.periodic import repeat
from crm_ticketing.domain import clocks
from crm_ticketing.domain.lifecycle import CLOSED, IN_PROGRESS, OPEN_STATES, RESOLVED
from crm_ticketing.domain.sla import PRIORITIES
from crm_ticketing.models import SlaClockRow, Ticket, TicketStatusChange, TicketTransfer

RATIO_PLACES = Decimal("0.0001")
COMPLAINT = "complaint"
REPEAT_WINDOW = timedelta(days=30)
"""A complaint is a repeat (重复投诉) when the same customer complained within this long before it: the regulator's
and the operators' own measure of a problem not fixed the first time."""

AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("under_4h", timedelta(hours=4)),
    ("4h_to_24h", timedelta(hours=24)),
    ("1d_to_3d", timedelta(days=3)),
    ("3d_to_7d", timedelta(days=7)),
    ("over_7d", None),
)
"""Backlog age bands (积压时长), by time since the ticket was opened, each up to (not including) its bound."""


def ratio(part: int, whole: int) -> Decimal | None:
    """part / whole to 4 places; None when there is nothing to divide (no tickets is not 0% attainment)."""
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATIO_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Backlog:
    """Open tickets now: by priority (every priority listed, zeros included), by age band, and the oldest."""

    by_priority: dict[str, int]
    by_age: dict[str, int]
    oldest_opened_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.by_priority.values())


async def backlog(session: AsyncSession, now: datetime) -> Backlog:
    is_open = Ticket.status.in_(sorted(OPEN_STATES))
    counts = dict.fromkeys(PRIORITIES, 0)
    for priority, count in await session.execute(
        select(Ticket.priority, func.count()).where(is_open).group_by(Ticket.priority)
    ):
        counts[priority] = count
    bands = []
    newer_edge: datetime | None = None
    for name, bound in AGE_BUCKETS:
        edge = now - bound if bound is not None else None
        band = []
        if edge is not None:
            band.append(Ticket.creation_date > edge)
        if newer_edge is not None:
            band.append(Ticket.creation_date <= newer_edge)
        bands.append(func.sum(case((and_(*band), 1), else_=0)).label(name))
        newer_edge = edge
    row = (await session.execute(select(*bands, func.min(Ticket.creation_date)).where(is_open))).one()
    by_age = {name: int(value or 0) for (name, _), value in zip(AGE_BUCKETS, row[:-1], strict=True)}
    return Backlog(by_priority=counts, by_age=by_age, oldest_opened_at=row[-1])


@dataclass(frozen=True)
class ServiceQuality:
    """Tickets resolved in a window and how they were resolved; complaints opened in it and how many repeat one."""

    resolved: int
    first_response_met: int
    first_response_measured: int
    resolution_met: int
    first_contact: int
    complaints: int
    repeat_complaints: int

    @property
    def first_response_attainment(self) -> Decimal | None:
        return ratio(self.first_response_met, self.first_response_measured)

    @property
    def resolution_attainment(self) -> Decimal | None:
        return ratio(self.resolution_met, self.resolved)

    @property
    def first_contact_resolution(self) -> Decimal | None:
        return ratio(self.first_contact, self.resolved)

    @property
    def repeat_complaint_rate(self) -> Decimal | None:
        return ratio(self.repeat_complaints, self.complaints)


def _clock_met(kind: str) -> ColumnElement[bool]:
    """The ticket's `kind` clock stopped without breaching."""
    return exists().where(
        SlaClockRow.ticket_id == Ticket.id,
        SlaClockRow.kind == kind,
        SlaClockRow.stopped_at.is_not(None),
        SlaClockRow.breached_at.is_(None),
    )


def transferred_after_opening() -> ColumnElement[bool]:
    """Moved to another queue or agent after it was opened (routing at the opening is not a transfer)."""
    return exists().where(TicketTransfer.ticket_id == Ticket.id, TicketTransfer.transferred_at > Ticket.creation_date)


def reopened() -> ColumnElement[bool]:
    """Taken up again after a resolution (重新打开)."""
    return exists().where(
        TicketStatusChange.ticket_id == Ticket.id,
        TicketStatusChange.from_status.in_((RESOLVED, CLOSED)),
        TicketStatusChange.status == IN_PROGRESS,
    )


async def service_quality(session: AsyncSession, since: datetime, until: datetime) -> ServiceQuality:
    """Tickets resolved in [since, until) (resolved or closed since, by their resolution date) and complaints
    opened in it. First-contact resolution: resolved, never transferred after it was opened, never reopened."""
    resolved_in = and_(
        Ticket.resolution_date >= since, Ticket.resolution_date < until, Ticket.status.in_((RESOLVED, CLOSED))
    )
    first_response_measured = exists().where(
        SlaClockRow.ticket_id == Ticket.id,
        SlaClockRow.kind == clocks.FIRST_RESPONSE,
        SlaClockRow.stopped_at.is_not(None),
    )
    counted = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((_clock_met(clocks.FIRST_RESPONSE), 1), else_=0)),
                func.sum(case((first_response_measured, 1), else_=0)),
                func.sum(case((_clock_met(clocks.RESOLUTION), 1), else_=0)),
                func.sum(case((or_(transferred_after_opening(), reopened()), 0), else_=1)),
            ).where(resolved_in)
        )
    ).one()
    complaints, repeats = await _complaints(session, since, until)
    resolved, fr_met, fr_measured, res_met, first_contact = (int(v or 0) for v in counted)
    return ServiceQuality(
        resolved=resolved,
        first_response_met=fr_met,
        first_response_measured=fr_measured,
        resolution_met=res_met,
        first_contact=first_contact,
        complaints=complaints,
        repeat_complaints=repeats,
    )


async def _complaints(session: AsyncSession, since: datetime, until: datetime) -> tuple[int, int]:
    """Complaints opened in [since, until), and how many of them came within REPEAT_WINDOW of the same customer's
    previous complaint. Only the customers who complained in the window are read, with their complaints of the
    REPEAT_WINDOW before it; the gaps are measured here, as date arithmetic in SQL differs by database."""
    is_complaint = Ticket.ticket_type == COMPLAINT
    complained = select(Ticket.customer_id).where(
        is_complaint, Ticket.creation_date >= since, Ticket.creation_date < until
    )
    rows = await session.execute(
        select(Ticket.customer_id, Ticket.creation_date)
        .where(
            is_complaint,
            Ticket.customer_id.in_(complained),
            Ticket.creation_date >= since - REPEAT_WINDOW,
            Ticket.creation_date < until,
        )
        .order_by(Ticket.customer_id, Ticket.creation_date)
    )
    complaints = repeats = 0
    previous: tuple[str, datetime] | None = None
    for customer_id, opened_at in rows:
        if opened_at >= since:
            complaints += 1
            if previous is not None and previous[0] == customer_id and opened_at - previous[1] <= REPEAT_WINDOW:
                repeats += 1
        previous = (customer_id, opened_at)
    return complaints, repeats


# --- Prometheus gauges -------------------------------------------------------------------------------------------

QUALITY_WINDOW = timedelta(days=7)
"""The gauges' service-quality figures are over the last 7 days: long enough to be steady, short enough to move."""

OPEN_TICKETS = Gauge("crm_ticketing_open_tickets", "Open tickets (未结工单) by priority", ["priority"])
BACKLOG_AGE = Gauge("crm_ticketing_backlog_tickets", "Open tickets by time since opened (积压时长)", ["age"])
OLDEST_OPEN = Gauge("crm_ticketing_oldest_open_ticket_seconds", "Age of the oldest open ticket; 0 when none is open")
ATTAINMENT = Gauge(
    "crm_ticketing_sla_attainment_ratio",
    "Share of tickets resolved in the last 7 days that met the clock (SLA 达标率); NaN when none was resolved",
    ["clock"],
)
FIRST_CONTACT = Gauge(
    "crm_ticketing_first_contact_resolution_ratio",
    "Share of tickets resolved in the last 7 days at the first contact (一次解决率)",
)
REPEAT_COMPLAINTS = Gauge(
    "crm_ticketing_repeat_complaint_ratio",
    "Share of complaints opened in the last 7 days repeating one of the 30 days before (重复投诉率)",
)


def _set(gauge: Gauge, value: Decimal | None, **labels: str) -> None:
    """A ratio with nothing to divide is NaN rather than 0, which would read as total failure."""
    target = gauge.labels(**labels) if labels else gauge
    target.set(float(value) if value is not None else float("nan"))


async def refresh_gauges(db: Database, now: datetime) -> None:
    """Every replica sets the same store-wide figures: dashboards take max() across replicas."""
    async with db.sessions() as session:
        open_now = await backlog(session, now)
        quality = await service_quality(session, now - QUALITY_WINDOW, now)
    for priority, count in open_now.by_priority.items():
        OPEN_TICKETS.labels(priority=priority).set(count)
    for band, count in open_now.by_age.items():
        BACKLOG_AGE.labels(age=band).set(count)
    oldest = open_now.oldest_opened_at
    OLDEST_OPEN.set((now - oldest).total_seconds() if oldest else 0)
    _set(ATTAINMENT, quality.first_response_attainment, clock=clocks.FIRST_RESPONSE)
    _set(ATTAINMENT, quality.resolution_attainment, clock=clocks.RESOLUTION)
    _set(FIRST_CONTACT, quality.first_contact_resolution)
    _set(REPEAT_COMPLAINTS, quality.repeat_complaint_rate)


async def run_gauges(db: Database, every: float) -> None:
    """Refresh the gauges every `every` seconds until cancelled, the first time at once."""
    await repeat(lambda: refresh_gauges(db, utcnow()), every, what="refreshing the ticket report gauges")
