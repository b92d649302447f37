"""Consents (营销授权) and do-not-disturb (免打扰): who may be contacted, on which channel, for what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain.timeline import add_to_timeline
from crm_customer.models import (
    Consent,
    ConsentHistory,
    DoNotDisturb,
)
from crm_kit.db import utcnow
from crm_kit.errors import Conflict, InvalidInput
from crm_kit.presentation import SHANGHAI

CHANNELS = ("sms", "email", "push", "outbound_call")
PURPOSES = ("marketing", "service")
SOURCES = ("app", "web", "store", "hotline", "sms_reply", "boss", "agent")
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of our clock a caller's `recorded_at` may be and still count as "now" (clocks drift)."""


def default_granted(purpose: str) -> bool:
    """Without a record: marketing is not consented (opt-in, PIPL art. 13-14); service messages are allowed."""
    return purpose != "marketing"


def dnd_active(enabled: bool, until: datetime | None, now: datetime) -> bool:
    """Do-not-disturb is in force when it is on and its `until`, if any, is still ahead."""
    return enabled and (until is None or until > now)


def contactable(purpose: str, granted: bool, dnd_on: bool) -> bool:
    """May the customer be contacted for `purpose` on a channel whose consent is `granted`?
    Do-not-disturb silences marketing only; service messages (bills, outages) still go where consented."""
    if purpose == "marketing":
        return granted and not dnd_on
    return granted


def check_recorded_at(recorded_at: datetime, now: datetime) -> None:
    """When the customer gave or withdrew it cannot lie in the future."""
    if recorded_at > now + CLOCK_SKEW:
        raise InvalidInput(f"recorded_at {recorded_at.isoformat()} is in the future", field="recorded_at")


def check_not_stale(stored: datetime | None, recorded_at: datetime) -> None:
    """A change older than the one on record arrived late: the newer statement of the customer stands."""
    if stored is not None and recorded_at < stored:
        raise Conflict(
            f"recorded_at {recorded_at.isoformat()} is older than the state on record ({stored.isoformat()})",
            field="recorded_at",
        )


def check_until(enabled: bool, until: datetime | None, now: datetime) -> None:
    if until is None:
        return
    if not enabled:
        raise InvalidInput("until applies only when do-not-disturb is enabled", field="until")
    if until <= now:
        raise InvalidInput(f"until {until.isoformat()} is not in the future", field="until")


@dataclass
class ConsentView:
    """One channel × purpose as it stands: the record, or the default when there is none."""

    channel: str
    purpose: str
    granted: bool
    record: Consent | None
    contactable: bool


@dataclass
class Consents:
    customer_id: str
    items: list[ConsentView]
    dnd: DoNotDisturb | None
    dnd_on: bool


async def load_consents(session: AsyncSession, customer_id: str, now: datetime | None = None) -> Consents:
    """Every channel × purpose with its effective state, and the customer's do-not-disturb."""
    now = now or utcnow()
    records = {
        (c.channel, c.purpose): c
        for c in await session.scalars(
            select(Consent).where(Consent.customer_id == customer_id).execution_options(populate_existing=True)
        )
    }
    dnd = await session.get(DoNotDisturb, customer_id, populate_existing=True)
    dnd_on = dnd is not None and dnd_active(dnd.enabled, dnd.until, now)
    items = []
    for channel in CHANNELS:
        for purpose in PURPOSES:
            record = records.get((channel, purpose))
            granted = record.granted if record is not None else default_granted(purpose)
            items.append(ConsentView(channel, purpose, granted, record, contactable(purpose, granted, dnd_on)))
    return Consents(customer_id, items, dnd, dnd_on)


CONSENT_CHANGED = "customer.profile.consent_changed.v1"
DND_CHANGED = "customer.profile.dnd_changed.v1"
PURPOSE_TERMS = {"marketing": "Marketing (营销授权)", "service": "Service messages (服务通知)"}


def consent_summary(channel: str, purpose: str, granted: bool, source: str) -> str:
    return f"{PURPOSE_TERMS[purpose]} on {channel} {'granted' if granted else 'withdrawn'} via {source}"


def dnd_summary(enabled: bool, until: datetime | None, source: str) -> str:
    if not enabled:
        return f"Do-not-disturb (免打扰) lifted via {source}"
    ending = f" until {until.astimezone(SHANGHAI).isoformat()}" if until else ""
    return f"Do-not-disturb (免打扰) on{ending} via {source}"


@dataclass
class ConsentChange:
    consent: Consent
    changed: bool
    event_id: str | None = None
    """The id of the customer.profile event that announces the change (its timeline row's source)."""


async def record_consent(
    session: AsyncSession,
    customer_id: str,
    channel: str,
    purpose: str,
    *,
    granted: bool,
    source: str,
    recorded_at: datetime | None,
    actor: str,
) -> ConsentChange:
    """Record the customer's consent on `channel` for `purpose`.

    Refused: a `recorded_at` in the future (422) or older than the one on record (409, it arrived late).
    The same `granted` as on record changes nothing (an idempotent repeat): no history, no event.
    """
    now = utcnow()
    recorded_at = recorded_at or now
    check_recorded_at(recorded_at, now)
    consent = await session.get(Consent, (customer_id, channel, purpose), populate_existing=True)
    check_not_stale(consent.recorded_at if consent else None, recorded_at)
    if consent is not None and consent.granted == granted:
        return ConsentChange(consent, changed=False)
    if consent is None:
        consent = Consent(customer_id=customer_id, channel=channel, purpose=purpose)
        session.add(consent)
    consent.granted = granted
    consent.source = source
    consent.recorded_at = recorded_at
    consent.updated_at = now
    history = ConsentHistory(kind="consent", channel=channel, purpose=purpose, granted=granted)
    summary = consent_summary(channel, purpose, granted, source)
    event_id = await _log_change(
        session, history, customer_id, source, recorded_at, actor, now, CONSENT_CHANGED, summary
    )
    return ConsentChange(consent, changed=True, event_id=event_id)


async def _log_change(
    session: AsyncSession,
    history: ConsentHistory,
    customer_id: str,
    source: str,
    recorded_at: datetime,
    actor: str,
    now: datetime,
    event_type: str,
    summary: str,
) -> str:
    """One effective change: its history row and its timeline row; returns the id of the event to publish."""
    history.customer_id = customer_id
    history.source = source
    history.recorded_at = recorded_at
    history.changed_by = actor
    history.changed_at = now
    session.add(history)
    event_id = str(uuid.uuid4())
    await add_to_timeline(
        session,
        customer_id,
        occurred_at=recorded_at,
        kind="consent",
        event_type=event_type,
        summary=summary,
        source_event_id=event_id,
    )
    return event_id


@dataclass
class DndChange:
    dnd: DoNotDisturb
    changed: bool
    event_id: str | None = None


async def record_dnd(
    session: AsyncSession,
    customer_id: str,
    *,
    enabled: bool,
    until: datetime | None,
    source: str,
    recorded_at: datetime | None,
    actor: str,
) -> DndChange:
    """Switch the customer's do-not-disturb on (optionally until a moment) or off.

    Same refusals as consents, plus `until` only with `enabled` and only in the future (422).
    The same `enabled`/`until` as on record changes nothing.
    """
    now = utcnow()
    recorded_at = recorded_at or now
    check_recorded_at(recorded_at, now)
    check_until(enabled, until, now)
    dnd = await session.get(DoNotDisturb, customer_id, populate_existing=True)
    check_not_stale(dnd.recorded_at if dnd else None, recorded_at)
    if dnd is not None and dnd.enabled == enabled and dnd.until == until:
        return DndChange(dnd, changed=False)
    if dnd is None:
        dnd = DoNotDisturb(customer_id=customer_id)
        session.add(dnd)
    dnd.enabled = enabled
    dnd.until = until
    dnd.source = source
    dnd.recorded_at = recorded_at
    dnd.updated_at = now
    history = ConsentHistory(kind="do_not_disturb", enabled=enabled, until=until)
    summary = dnd_summary(enabled, until, source)
    event_id = await _log_change(session, history, customer_id, source, recorded_at, actor, now, DND_CHANGED, summary)
    return DndChange(dnd, changed=True, event_id=event_id)


async def consent_history(
    session: AsyncSession, customer_id: str, offset: int, limit: int
) -> tuple[int, list[ConsentHistory]]:
    """(total, page) of the customer's consent history, newest first."""
    where = ConsentHistory.customer_id == customer_id
    total = await session.scalar(select(func.count()).select_from(ConsentHistory).where(where)) or 0
    page = await session.scalars(
        select(ConsentHistory).where(where).order_by(ConsentHistory.seq.desc()).offset(offset).limit(limit)
    )
    return total, list(page)
