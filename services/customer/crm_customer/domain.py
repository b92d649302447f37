"""Customer rules: how BOSS subscription events shape customers, accounts and lines; consents and do-not-disturb."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.models import BillingAccount, Consent, ConsentHistory, Customer, DoNotDisturb, Subscription
from crm_kit.db import utcnow
from crm_kit.errors import Conflict, InvalidInput
from crm_kit.events import parse_rfc3339

LINE_STATUS_AFTER = {
    "billing.subscription.activated.v1": "active",
    "billing.subscription.resumed.v1": "active",
    "billing.subscription.suspended.v1": "suspended",
    "billing.subscription.terminated.v1": "terminated",
    "billing.subscription.ported_out.v1": "ported_out",
}
ENDED = ("terminated", "ported_out")


@dataclass
class LineCounts:
    active: int
    suspended: int
    total: int


@dataclass
class Change:
    customer: Customer
    lines: LineCounts
    created: bool
    profile_changed: bool


def customer_status(lines: LineCounts) -> str:
    """active: a line in service; suspended: lines exist but all are suspended (停机); inactive: none open."""
    if lines.active:
        return "active"
    if lines.suspended:
        return "suspended"
    return "inactive"


async def count_lines(session: AsyncSession, customer_id: str) -> LineCounts:
    rows = dict(
        (
            await session.execute(
                select(Subscription.status, func.count())
                .where(Subscription.customer_id == customer_id)
                .group_by(Subscription.status)
            )
        ).all()
    )
    return LineCounts(active=rows.get("active", 0), suspended=rows.get("suspended", 0), total=sum(rows.values()))


async def apply_subscription_event(session: AsyncSession, event_type: str, data: dict[str, Any]) -> Change:
    """Apply one billing.subscription.* event.

    A stale event (older than the line's last applied one: it arrived out of order) changes nothing at all:
    not the line, not the customer's details, not the accounts.
    """
    now = utcnow()
    occurred = parse_rfc3339(data["occurred_at"])
    line = await session.get(Subscription, data["subscription_id"])
    if line is not None and occurred < line.last_event_at:
        owner = await session.get_one(Customer, line.customer_id)
        return Change(owner, await count_lines(session, owner.id), created=False, profile_changed=False)

    customer = await session.get(Customer, data["customer_id"])
    created = customer is None
    if customer is None:
        customer = Customer(id=data["customer_id"], status="inactive", created_at=now, updated_at=now)
        session.add(customer)
    before = (customer.name, customer.customer_type, customer.region, customer.status)
    lines_before = await count_lines(session, customer.id) if not created else LineCounts(0, 0, 0)

    party = data.get("customer")
    if party:
        customer.name = party["name"]
        customer.customer_type = party["type"]
        customer.region = party["region"]
        customer.id_card_no = party.get("id_card_no", customer.id_card_no)

    if await session.get(BillingAccount, data["account_id"]) is None:
        session.add(BillingAccount(id=data["account_id"], customer_id=customer.id, created_at=now))
        await session.flush()

    if line is None:
        line = Subscription(
            id=data["subscription_id"],
            customer_id=customer.id,
            account_id=data["account_id"],
            msisdn=data["msisdn"],
            status="active",
            last_event_at=occurred,
            updated_at=now,
        )
        session.add(line)
    _apply_to_line(line, event_type, data, occurred)
    line.updated_at = now
    await session.flush()

    lines = await count_lines(session, customer.id)
    customer.status = customer_status(lines)
    after = (customer.name, customer.customer_type, customer.region, customer.status)
    changed = created or before != after or lines != lines_before
    if changed:
        customer.updated_at = now
    return Change(customer, lines, created, profile_changed=changed)


def _apply_to_line(line: Subscription, event_type: str, data: dict[str, Any], occurred: datetime) -> None:
    line.msisdn = data["msisdn"]
    line.account_id = data["account_id"]
    line.last_event_at = occurred
    if "plan" in data:
        line.plan_code = data["plan"]["code"]
        line.plan_name = data["plan"]["name"]
        line.monthly_fee_fen = data["plan"]["monthly_fee_fen"]
    if event_type == "billing.subscription.activated.v1":
        line.activated_at = occurred
        line.ended_at = None
        line.payment_mode = data["payment_mode"]
        line.dealer_code = data.get("dealer_code")
        if data.get("contract_end"):
            line.contract_end = date.fromisoformat(data["contract_end"])
    new_status = LINE_STATUS_AFTER.get(event_type)
    if new_status:
        line.status = new_status
        line.status_reason = data.get("reason")
        if new_status in ENDED:
            line.ended_at = occurred
            line.recipient_operator = data.get("recipient_operator")


# --- consents (营销授权) and do-not-disturb (免打扰) ---------------------------------------------------------

CHANNELS = ("sms", "email", "push", "outbound_call")
PURPOSES = ("marketing", "service")
SOURCES = ("app", "web", "store", "hotline", "sms_reply", "boss", "agent")
UNKNOWN_ACTOR = "unknown"
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


@dataclass
class ConsentChange:
    consent: Consent
    changed: bool


async def record_consent(
    session: AsyncSession,
    customer_id: str,
    channel: str,
    purpose: str,
    *,
    granted: bool,
    source: str,
    recorded_at: datetime | None,
    actor: str | None,
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
    session.add(
        ConsentHistory(
            customer_id=customer_id,
            kind="consent",
            channel=channel,
            purpose=purpose,
            granted=granted,
            source=source,
            recorded_at=recorded_at,
            changed_by=actor or UNKNOWN_ACTOR,
            changed_at=now,
        )
    )
    await session.flush()
    return ConsentChange(consent, changed=True)


@dataclass
class DndChange:
    dnd: DoNotDisturb
    changed: bool


async def record_dnd(
    session: AsyncSession,
    customer_id: str,
    *,
    enabled: bool,
    until: datetime | None,
    source: str,
    recorded_at: datetime | None,
    actor: str | None,
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
    session.add(
        ConsentHistory(
            customer_id=customer_id,
            kind="do_not_disturb",
            enabled=enabled,
            until=until,
            source=source,
            recorded_at=recorded_at,
            changed_by=actor or UNKNOWN_ACTOR,
            changed_at=now,
        )
    )
    await session.flush()
    return DndChange(dnd, changed=True)


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
