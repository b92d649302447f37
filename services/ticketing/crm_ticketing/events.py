"""What the ticketing service publishes (ticketing.ticket: created, state changed, resolved, closed, satisfaction
recorded, SLA warned and breached) and what it consumes (customer.profile: who is a key account, erasures, merges)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.consumer import Handler, Subscription
from crm_kit.events import CloudEvent, new_event, parse_rfc3339
from crm_ticketing.domain import standing
from crm_ticketing.models import Ticket

SOURCE = "/crm/ticketing"
CREATED = "ticketing.ticket.created.v1"
STATE_CHANGED = "ticketing.ticket.state_changed.v1"
CSAT_RECORDED = "ticketing.ticket.csat_recorded.v1"
SLA_WARNING = "ticketing.ticket.sla_warning.v1"
SLA_BREACHED = "ticketing.ticket.sla_breached.v1"
RESOLVED = "ticketing.ticket.resolved.v1"
CLOSED = "ticketing.ticket.closed.v1"

TITLE_FROM_DESCRIPTION = 60
"""A ticket without a name is titled by the start of its description, this many characters."""


def title(ticket: Ticket) -> str:
    return ticket.name or ticket.description[:TITLE_FROM_DESCRIPTION]


def _iso(moment: datetime | None) -> str | None:
    """In UTC, as stored."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _ticket_event(event_type: str, ticket: Ticket, at: datetime, **data: object) -> CloudEvent:
    """Keyed by the customer, so one customer's ticket events keep their order; `time` is when it happened."""
    return new_event(
        event_type,
        source=SOURCE,
        subject=ticket.customer_id,
        time=at,
        data={"ticket_id": ticket.id, "customer_id": ticket.customer_id, "occurred_at": _iso(at), **data},
    )


def ticket_created(ticket: Ticket, sla_due_at: datetime | None) -> CloudEvent:
    """工单受理: `sla_due_at` is when the resolution is due (处理时限)."""
    return _ticket_event(
        CREATED,
        ticket,
        ticket.creation_date,
        ticket_type=ticket.ticket_type,
        category=ticket.category,
        title=title(ticket),
        priority=ticket.priority,
        state=ticket.status,
        sla_due_at=_iso(sla_due_at),
        channel=ticket.channel,
    )


def state_changed(ticket: Ticket, from_state: str) -> CloudEvent:
    """The move the ticket just made, to its current status, with the reason given for it."""
    return _ticket_event(
        STATE_CHANGED,
        ticket,
        ticket.status_change_date,
        from_state=from_state,
        to_state=ticket.status,
        reason=ticket.status_change_reason,
    )


def ticket_resolved(ticket: Ticket, *, sla_met: bool, first_contact: bool, reopened: bool) -> CloudEvent:
    """已解决, at the status change just made, with what the service-quality reports count: time to resolve, SLA
    met, first-contact resolution."""
    return _ticket_event(
        RESOLVED,
        ticket,
        ticket.status_change_date,
        ticket_type=ticket.ticket_type,
        category=ticket.category,
        priority=ticket.priority,
        channel=ticket.channel,
        created_at=_iso(ticket.creation_date),
        resolution_seconds=max(0, int((ticket.status_change_date - ticket.creation_date).total_seconds())),
        sla_met=sla_met,
        first_contact=first_contact,
        reopened=reopened,
        reason=ticket.status_change_reason,
    )


def ticket_closed(ticket: Ticket) -> CloudEvent:
    """已关闭: closed after its resolution, which it names."""
    return _ticket_event(
        CLOSED,
        ticket,
        ticket.status_change_date,
        category=ticket.category,
        resolved_at=_iso(ticket.resolution_date),
        reason=ticket.status_change_reason,
    )


def csat_recorded(ticket: Ticket, at: datetime) -> CloudEvent:
    """满意度回访: the score and comment on the ticket, recorded at `at`."""
    return _ticket_event(CSAT_RECORDED, ticket, at, score=ticket.csat_score, comment=ticket.csat_comment)


def sla_crossed(
    event_type: str,
    ticket: Ticket,
    at: datetime,
    *,
    clock: str,
    due_at: datetime,
    elapsed: timedelta,
    target: timedelta,
) -> CloudEvent:
    """SLA 预警 (SLA_WARNING) or 超时 (SLA_BREACHED) of one clock, crossed at `at`, with where the ticket stands after
    it (escalation level, queue, assignee). `due_at` is the running clock's, never null (the contract says so)."""
    return _ticket_event(
        event_type,
        ticket,
        at,
        clock=clock,
        due_at=_iso(due_at),
        elapsed_seconds=int(elapsed.total_seconds()),
        target_seconds=int(target.total_seconds()),
        priority=ticket.priority,
        category=ticket.category,
        escalation_level=ticket.escalation_level,
        queue=ticket.queue,
        assignee=ticket.assignee,
    )


# --- customer.profile → customer_standing ------------------------------------------------------------------------

PROFILE_CREATED = "customer.profile.created.v1"
PROFILE_UPDATED = "customer.profile.updated.v1"
KEY_ACCOUNT_CHANGED = "customer.profile.key_account_changed.v1"
ERASED = "customer.profile.erased.v1"
MERGED = "customer.profile.merged.v1"


async def on_profile(session: AsyncSession, event: CloudEvent) -> None:
    """A customer the customer service knows: a standard customer until it says otherwise."""
    await standing.standing(session, event.data["customer_id"])


async def on_key_account_changed(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data
    await standing.key_account_changed(
        session,
        data["customer_id"],
        key_account=data["key_account"],
        tier=data["tier"],
        account_manager=data["account_manager"],
        changed_at=parse_rfc3339(data["changed_at"]),
    )


async def on_erased(session: AsyncSession, event: CloudEvent) -> None:
    await standing.erased(session, event.data["customer_id"], parse_rfc3339(event.data["erased_at"]))


async def on_merged(session: AsyncSession, event: CloudEvent) -> None:
    await standing.merged(session, event.data["survivor_id"], event.data["merged_id"])


def subscription(group: str) -> Subscription:
    """customer.profile, for the SLA's green channel and the key-account managers' portfolios; the kit's inbox makes
    each event count once."""
    handlers: Mapping[str, Handler] = {
        PROFILE_CREATED: on_profile,
        PROFILE_UPDATED: on_profile,
        KEY_ACCOUNT_CHANGED: on_key_account_changed,
        ERASED: on_erased,
        MERGED: on_merged,
    }
    return Subscription(group=group, handlers=handlers)
