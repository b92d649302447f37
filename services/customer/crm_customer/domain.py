"""Customer rules: how BOSS subscription events shape customers, accounts and lines; consents and do-not-disturb;
the billing projections (ARPU, payment behaviour, activity) and the interaction timeline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.models import (
    AccountStanding,
    BillingAccount,
    BillingPayment,
    Consent,
    ConsentHistory,
    Customer,
    DoNotDisturb,
    Invoice,
    InvoiceOverdue,
    Subscription,
    TimelineEntry,
    UsageDay,
)
from crm_kit.db import insert_ignoring_duplicates, utcnow
from crm_kit.errors import Conflict, InvalidInput
from crm_kit.events import parse_rfc3339
from crm_kit.presentation import SHANGHAI, mask_msisdn, yuan

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


async def ensure_customer(session: AsyncSession, customer_id: str, now: datetime) -> tuple[Customer, bool]:
    """The customer, or a placeholder (status inactive, no details yet) when the BOSS names one we have not seen:
    events about a customer may arrive before the one that introduces them. Returns (customer, created)."""
    customer = await session.get(Customer, customer_id)
    if customer is not None:
        return customer, False
    customer = Customer(id=customer_id, status="inactive", created_at=now, updated_at=now)
    session.add(customer)
    return customer, True


async def ensure_account(session: AsyncSession, account_id: str, customer_id: str, now: datetime) -> None:
    """The billing account is recorded with the customer it was first seen with."""
    if await session.get(BillingAccount, account_id) is None:
        session.add(BillingAccount(id=account_id, customer_id=customer_id, created_at=now))
        await session.flush()


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

    customer, created = await ensure_customer(session, data["customer_id"], now)
    before = (customer.name, customer.customer_type, customer.region, customer.status)
    lines_before = await count_lines(session, customer.id) if not created else LineCounts(0, 0, 0)

    party = data.get("customer")
    if party:
        customer.name = party["name"]
        customer.customer_type = party["type"]
        customer.region = party["region"]
        customer.id_card_no = party.get("id_card_no", customer.id_card_no)

    await ensure_account(session, data["account_id"], customer.id, now)

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
    event_id = str(uuid.uuid4())
    await add_to_timeline(
        session,
        customer_id,
        occurred_at=recorded_at,
        kind="consent",
        event_type=CONSENT_CHANGED,
        summary=consent_summary(channel, purpose, granted, source),
        source_event_id=event_id,
    )
    return ConsentChange(consent, changed=True, event_id=event_id)


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
    event_id = str(uuid.uuid4())
    await add_to_timeline(
        session,
        customer_id,
        occurred_at=recorded_at,
        kind="consent",
        event_type=DND_CHANGED,
        summary=dnd_summary(enabled, until, source),
        source_event_id=event_id,
    )
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


# --- the interaction timeline (客户接触历史) --------------------------------------------------------------------


async def add_to_timeline(
    session: AsyncSession,
    customer_id: str,
    *,
    occurred_at: datetime,
    kind: str,
    event_type: str,
    summary: str,
    source_event_id: str,
) -> None:
    """One row per event about the customer; the same event again (same id) adds nothing."""
    row = {
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "kind": kind,
        "type": event_type,
        "summary": summary[:500],
        "source_event_id": source_event_id,
        "recorded_at": utcnow(),
    }
    await session.flush()  # the customer row first: the timeline row refers to it
    dialect = session.get_bind().dialect.name
    await session.execute(insert_ignoring_duplicates(dialect, TimelineEntry.__table__).values(**row))


async def timeline(
    session: AsyncSession, customer_id: str, kind: str | None, offset: int, limit: int
) -> tuple[int, list[TimelineEntry]]:
    """(total, page) of the customer's timeline, newest first (ties: the later recorded first)."""
    where = [TimelineEntry.customer_id == customer_id]
    if kind:
        where.append(TimelineEntry.kind == kind)
    total = await session.scalar(select(func.count()).select_from(TimelineEntry).where(*where)) or 0
    page = await session.scalars(
        select(TimelineEntry)
        .where(*where)
        .order_by(TimelineEntry.occurred_at.desc(), TimelineEntry.seq.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, list(page)


def _money(fen: int) -> str:
    return f"-¥{yuan(-fen)}" if fen < 0 else f"¥{yuan(fen)}"


SUBSCRIPTION_SUMMARY = {
    "billing.subscription.activated.v1": "activated (开户)",
    "billing.subscription.plan_changed.v1": "plan changed (套餐变更)",
    "billing.subscription.suspended.v1": "suspended (停机)",
    "billing.subscription.resumed.v1": "resumed (复机)",
    "billing.subscription.terminated.v1": "terminated (销户)",
    "billing.subscription.ported_out.v1": "ported out (携号转出)",
}

COLLECTION_STATUS_TERMS = {
    "normal": "正常",
    "reminded": "已催缴提醒",
    "soft_suspended": "单停",
    "hard_suspended": "双停",
    "written_off": "坏账核销",
    "with_agency": "委外催收",
}


def billing_summary_line(event_type: str, data: dict[str, Any]) -> str:
    """A short English summary of a billing event for the timeline, with the Chinese term where it helps."""
    line = mask_msisdn(data.get("msisdn"))
    if event_type in SUBSCRIPTION_SUMMARY:
        text = f"Line {line} {SUBSCRIPTION_SUMMARY[event_type]}"
        if "plan" in data:
            text += f": {data['plan']['name']} ({_money(data['plan']['monthly_fee_fen'])}/month)"
        elif data.get("reason"):
            text += f": {data['reason']}"
        if data.get("recipient_operator"):
            text += f" to {data['recipient_operator']}"
        return text
    if event_type == INVOICE_ISSUED:
        return (
            f"Invoice {data['billing_period']} issued (出账): {_money(data['amount_due_fen'])} due {data['due_date']}"
        )
    if event_type == PAYMENT_RECEIVED:
        text = f"Payment received (缴费): {_money(data['amount_fen'])} via {data['channel']}"
        return text + (f" for invoice {data['invoice_id']}" if data.get("invoice_id") else "")
    if event_type == PAYMENT_FAILED:
        return f"Payment failed (缴费失败): {_money(data['amount_fen'])} via {data['channel']}, {data['reason']}"
    if event_type == PAYMENT_REFUNDED:
        return f"Refund (退费): {_money(data['amount_fen'])} of payment {data['payment_id']}: {data['reason']}"
    if event_type == PAYMENT_OVERDUE:
        return (
            f"Invoice {data['invoice_id']} overdue (欠费) {data['days_overdue']} days: "
            f"{_money(data['amount_overdue_fen'])} unpaid"
        )
    if event_type == PAYMENT_RECHARGED:
        return (
            f"Top-up (充值) of line {line}: {_money(data['amount_fen'])} via {data['channel']}, "
            f"balance {_money(data['balance_after_fen'])}"
        )
    if event_type == CREDIT_LIMIT_CHANGED:
        return (
            f"Credit limit (信用额度) of account {data['account_id']}: "
            f"{_money(data['from_limit_fen'])} → {_money(data['to_limit_fen'])}"
            + (f", {data['reason']}" if data.get("reason") else "")
        )
    if event_type == COLLECTION_STATUS_CHANGED:
        status = data["status"]
        term = COLLECTION_STATUS_TERMS[status]
        text = f"Collection status (催缴状态) of account {data['account_id']}: {status} ({term})"
        return text + (f", {_money(data['outstanding_fen'])} owed" if data.get("outstanding_fen") else "")
    if event_type == USAGE_RECORDED:
        text = (
            f"Usage (用量) {data['usage_date']} on line {line}: {data['voice_minutes']} min, "
            f"{data['sms_count']} SMS, {data['data_mb']} MB"
        )
        return text + (", roaming (漫游)" if data["roaming"] else "")
    return event_type


# --- billing projections: bills, payments, arrears, account standing, usage (账单/缴费/欠费/用量) ------------------

INVOICE_ISSUED = "billing.invoice.issued.v1"
PAYMENT_RECEIVED = "billing.payment.received.v1"
PAYMENT_FAILED = "billing.payment.failed.v1"
PAYMENT_REFUNDED = "billing.payment.refunded.v1"
PAYMENT_OVERDUE = "billing.payment.overdue.v1"
PAYMENT_RECHARGED = "billing.payment.recharged.v1"
CREDIT_LIMIT_CHANGED = "billing.account.credit_limit_changed.v1"
COLLECTION_STATUS_CHANGED = "billing.account.collection_status_changed.v1"
USAGE_RECORDED = "billing.usage.recorded.v1"
BILLING_EVENTS = [
    USAGE_RECORDED,
    INVOICE_ISSUED,
    PAYMENT_RECEIVED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    PAYMENT_OVERDUE,
    PAYMENT_RECHARGED,
    CREDIT_LIMIT_CHANGED,
    COLLECTION_STATUS_CHANGED,
]
ARPU_MONTHS = 3
TREND_MONTHS = 6
ACTIVITY_DAYS = 30


@dataclass
class BillingChange:
    customer: Customer
    created: bool


async def apply_billing_event(
    session: AsyncSession, event_id: str, event_type: str, data: dict[str, Any]
) -> BillingChange:
    """Apply one billing.{usage,invoice,payment,account}.* event to the projections and the timeline.

    An unknown customer gets a placeholder, as a subscription event would give it. Each projection keeps the
    newest state it was told (by occurred_at), so a late copy of an older statement changes nothing there.
    """
    now = utcnow()
    occurred = parse_rfc3339(data["occurred_at"])
    customer, created = await ensure_customer(session, data["customer_id"], now)
    await ensure_account(session, data["account_id"], customer.id, now)
    await _PROJECTORS[event_type](session, customer.id, data, occurred, now)
    await add_to_timeline(
        session,
        customer.id,
        occurred_at=occurred,
        kind="billing",
        event_type=event_type,
        summary=billing_summary_line(event_type, data),
        source_event_id=event_id,
    )
    return BillingChange(customer, created)


async def _invoice_issued(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, now: datetime
) -> None:
    invoice = await session.get(Invoice, data["invoice_id"])
    if invoice is not None and occurred < invoice.last_event_at:
        return  # an older issue of a bill already re-sent
    if invoice is None:
        invoice = Invoice(id=data["invoice_id"])
        session.add(invoice)
    invoice.customer_id = customer_id
    invoice.account_id = data["account_id"]
    invoice.billing_period = data["billing_period"]
    invoice.amount_due_fen = data["amount_due_fen"]
    invoice.due_date = date.fromisoformat(data["due_date"])
    invoice.issued_at = parse_rfc3339(data["issued_at"])
    invoice.last_event_at = occurred
    invoice.updated_at = now


async def _payment(
    session: AsyncSession,
    customer_id: str,
    data: dict[str, Any],
    *,
    kind: str,
    ref: str,
    at: str,
) -> None:
    """A payment-like fact is immutable: the first record of its id stands."""
    if await session.get(BillingPayment, (kind, data[ref])) is not None:
        return
    session.add(
        BillingPayment(
            kind=kind,
            id=data[ref],
            customer_id=customer_id,
            account_id=data["account_id"],
            invoice_id=data.get("invoice_id"),
            payment_id=data.get("payment_id") if kind == "refunded" else None,
            subscription_id=data.get("subscription_id"),
            amount_fen=data["amount_fen"],
            channel=data.get("channel"),
            reason=data.get("reason") if kind in ("failed", "refunded") else None,
            balance_after_fen=data.get("balance_after_fen"),
            at=parse_rfc3339(data[at]),
        )
    )


async def _payment_received(session: AsyncSession, customer_id: str, data: dict[str, Any], *_: Any) -> None:
    await _payment(session, customer_id, data, kind="received", ref="payment_id", at="paid_at")


async def _payment_failed(session: AsyncSession, customer_id: str, data: dict[str, Any], *_: Any) -> None:
    await _payment(session, customer_id, data, kind="failed", ref="payment_id", at="attempted_at")


async def _payment_refunded(session: AsyncSession, customer_id: str, data: dict[str, Any], *_: Any) -> None:
    await _payment(session, customer_id, data, kind="refunded", ref="refund_id", at="refunded_at")


async def _payment_recharged(session: AsyncSession, customer_id: str, data: dict[str, Any], *_: Any) -> None:
    await _payment(session, customer_id, data, kind="recharged", ref="recharge_id", at="recharged_at")


async def _payment_overdue(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    """The latest overdue event of a bill is its state (the BOSS re-sends it as days pass or after a part payment)."""
    overdue = await session.get(InvoiceOverdue, data["invoice_id"])
    if overdue is not None and occurred < overdue.occurred_at:
        return
    if overdue is None:
        overdue = InvoiceOverdue(invoice_id=data["invoice_id"])
        session.add(overdue)
    overdue.customer_id = customer_id
    overdue.account_id = data["account_id"]
    overdue.amount_overdue_fen = data["amount_overdue_fen"]
    overdue.days_overdue = data["days_overdue"]
    overdue.due_date = date.fromisoformat(data["due_date"])
    overdue.occurred_at = occurred


async def _standing(session: AsyncSession, customer_id: str, account_id: str) -> AccountStanding:
    standing = await session.get(AccountStanding, account_id)
    if standing is None:
        standing = AccountStanding(account_id=account_id, customer_id=customer_id)
        session.add(standing)
    return standing


async def _credit_limit_changed(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    standing = await _standing(session, customer_id, data["account_id"])
    if standing.credit_limit_at is not None and occurred < standing.credit_limit_at:
        return
    standing.credit_limit_fen = data["to_limit_fen"]
    standing.credit_limit_at = occurred


async def _collection_status_changed(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    standing = await _standing(session, customer_id, data["account_id"])
    if standing.collection_status_at is not None and occurred < standing.collection_status_at:
        return
    standing.collection_status = data["status"]
    standing.collection_outstanding_fen = data.get("outstanding_fen")
    standing.collection_status_at = occurred


async def _usage_recorded(
    session: AsyncSession, customer_id: str, data: dict[str, Any], occurred: datetime, _now: datetime
) -> None:
    """The figures are the day's totals: a later summary of the same line and day replaces the earlier one."""
    key = (data["subscription_id"], date.fromisoformat(data["usage_date"]))
    day = await session.get(UsageDay, key)
    if day is not None and occurred < day.occurred_at:
        return
    if day is None:
        day = UsageDay(subscription_id=key[0], usage_date=key[1])
        session.add(day)
    day.customer_id = customer_id
    day.account_id = data["account_id"]
    day.voice_minutes = data["voice_minutes"]
    day.sms_count = data["sms_count"]
    day.data_mb = data["data_mb"]
    day.roaming = data["roaming"]
    day.roaming_voice_minutes = data.get("roaming_voice_minutes", 0)
    day.roaming_data_mb = data.get("roaming_data_mb", 0)
    day.charged_fen = data.get("charged_fen")
    day.occurred_at = occurred


_PROJECTORS = {
    INVOICE_ISSUED: _invoice_issued,
    PAYMENT_RECEIVED: _payment_received,
    PAYMENT_FAILED: _payment_failed,
    PAYMENT_REFUNDED: _payment_refunded,
    PAYMENT_OVERDUE: _payment_overdue,
    PAYMENT_RECHARGED: _payment_recharged,
    CREDIT_LIMIT_CHANGED: _credit_limit_changed,
    COLLECTION_STATUS_CHANGED: _collection_status_changed,
    USAGE_RECORDED: _usage_recorded,
}


# --- reading the projections -------------------------------------------------------------------------------------


@dataclass
class MonthSpend:
    billing_period: str
    amount_due_fen: int
    invoices: int


@dataclass
class InvoiceStanding:
    invoice_id: str
    paid_on_time: bool | None
    """True/False once paid in full (on or before / after its due date); None while unpaid."""
    outstanding_fen: int


@dataclass
class BillingSummary:
    arpu_fen: int | None
    arpu_months: list[str]
    trend: list[MonthSpend]
    paid_on_time: int
    paid_late: int
    unpaid: int
    outstanding_fen: int
    overdue_invoices: int
    failed_payments: int
    last_payment: BillingPayment | None
    accounts: list[AccountStanding]

    @property
    def payment_status(self) -> str:
        """in_arrears (欠费): something overdue is unpaid; late_payer: paid, but a bill late; good; no_history."""
        if self.outstanding_fen > 0:
            return "in_arrears"
        if self.paid_late:
            return "late_payer"
        if self.paid_on_time or self.unpaid:
            return "good"
        return "no_history"


def arpu(monthly: list[int]) -> int | None:
    """Mean of the months given, in whole fen rounded half up; None without any month."""
    if not monthly:
        return None
    mean = Decimal(sum(monthly)) / len(monthly)
    return int(mean.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def paid_on_time(paid_at: datetime, due_date: date) -> bool:
    """On time: paid on or before the due date, as a day in China Standard Time."""
    return paid_at.astimezone(SHANGHAI).date() <= due_date


def invoice_standing(
    invoice: Invoice | None, overdue: InvoiceOverdue | None, payments: list[BillingPayment]
) -> InvoiceStanding:
    """Where one bill stands, from its issue, its latest overdue statement and the payments made against it.

    Outstanding is what the latest overdue statement says is unpaid, less what was paid for the bill after it;
    a payment received for the bill clears it. Paid in full: the payments reach the amount due.
    """
    payments = sorted(payments, key=lambda p: p.at)
    outstanding = 0
    if overdue is not None:
        paid_since = sum(p.amount_fen for p in payments if p.at > overdue.occurred_at)
        outstanding = max(overdue.amount_overdue_fen - paid_since, 0)
    on_time: bool | None = None
    if invoice is not None:
        running = 0
        for payment in payments:
            running += payment.amount_fen
            if running >= invoice.amount_due_fen:
                on_time = overdue is None and paid_on_time(payment.at, invoice.due_date)
                break
    if outstanding == 0 and overdue is not None and on_time is None and payments:
        on_time = False  # the overdue amount was paid off: settled, late
    invoice_id = invoice.id if invoice is not None else overdue.invoice_id if overdue is not None else ""
    return InvoiceStanding(invoice_id, on_time, outstanding)


async def billing_summary(session: AsyncSession, customer_id: str) -> BillingSummary:
    invoices = list(await session.scalars(select(Invoice).where(Invoice.customer_id == customer_id)))
    overdues = {
        o.invoice_id: o
        for o in await session.scalars(select(InvoiceOverdue).where(InvoiceOverdue.customer_id == customer_id))
    }
    payments = list(
        await session.scalars(
            select(BillingPayment)
            .where(BillingPayment.customer_id == customer_id)
            .order_by(BillingPayment.at, BillingPayment.id)
        )
    )
    accounts = list(
        await session.scalars(
            select(AccountStanding)
            .where(AccountStanding.customer_id == customer_id)
            .order_by(AccountStanding.account_id)
        )
    )

    by_period: dict[str, MonthSpend] = {}
    for invoice in invoices:
        month = by_period.setdefault(invoice.billing_period, MonthSpend(invoice.billing_period, 0, 0))
        month.amount_due_fen += invoice.amount_due_fen
        month.invoices += 1
    periods = sorted(by_period)
    last = [by_period[p] for p in periods[-ARPU_MONTHS:]]

    paid_for: dict[str, list[BillingPayment]] = {}
    for payment in payments:
        if payment.kind == "received" and payment.invoice_id:
            paid_for.setdefault(payment.invoice_id, []).append(payment)
    by_id = {i.id: i for i in invoices}
    standings = [
        invoice_standing(by_id.get(invoice_id), overdues.get(invoice_id), paid_for.get(invoice_id, []))
        for invoice_id in sorted(set(by_id) | set(overdues))
        if invoice_id not in by_id or by_id[invoice_id].amount_due_fen > 0
    ]
    settled = [p for p in payments if p.kind in ("received", "recharged")]
    return BillingSummary(
        arpu_fen=arpu([m.amount_due_fen for m in last]),
        arpu_months=[m.billing_period for m in last],
        trend=[by_period[p] for p in periods[-TREND_MONTHS:]],
        paid_on_time=sum(1 for s in standings if s.paid_on_time is True),
        paid_late=sum(1 for s in standings if s.paid_on_time is False),
        unpaid=sum(1 for s in standings if s.paid_on_time is None),
        outstanding_fen=sum(s.outstanding_fen for s in standings),
        overdue_invoices=sum(1 for s in standings if s.outstanding_fen > 0),
        failed_payments=sum(1 for p in payments if p.kind == "failed"),
        last_payment=max(settled, key=lambda p: p.at) if settled else None,
        accounts=accounts,
    )


@dataclass
class Activity:
    """Usage over a window of days (China Standard Time), all lines of the customer together."""

    first_day: date
    last_day: date
    voice_minutes: int = 0
    sms_count: int = 0
    data_mb: int = 0
    roaming_voice_minutes: int = 0
    roaming_data_mb: int = 0
    days_active: int = 0
    roaming_days: int = 0
    lines: int = 0


def shanghai_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(SHANGHAI).date()


async def usage_summary(session: AsyncSession, customer_id: str, as_of: date) -> Activity:
    """The 30 days ending `as_of` (inclusive): totals, days with any use, days roaming, lines that used any."""
    first = as_of - timedelta(days=ACTIVITY_DAYS - 1)
    days = list(
        await session.scalars(
            select(UsageDay).where(
                UsageDay.customer_id == customer_id, UsageDay.usage_date >= first, UsageDay.usage_date <= as_of
            )
        )
    )
    activity = Activity(first, as_of)
    active: set[date] = set()
    roaming: set[date] = set()
    lines: set[str] = set()
    for day in days:
        activity.voice_minutes += day.voice_minutes
        activity.sms_count += day.sms_count
        activity.data_mb += day.data_mb
        activity.roaming_voice_minutes += day.roaming_voice_minutes
        activity.roaming_data_mb += day.roaming_data_mb
        if day.voice_minutes or day.sms_count or day.data_mb:
            active.add(day.usage_date)
            lines.add(day.subscription_id)
        if day.roaming:
            roaming.add(day.usage_date)
    activity.days_active, activity.roaming_days, activity.lines = len(active), len(roaming), len(lines)
    return activity


COLLECTION_SEVERITY = ("normal", "reminded", "soft_suspended", "hard_suspended", "with_agency", "written_off")


def worst_collection_status(statuses: list[str | None]) -> str | None:
    """The most serious collection status among the accounts (None when none was ever reported)."""
    known = [s for s in statuses if s in COLLECTION_SEVERITY]
    return max(known, key=COLLECTION_SEVERITY.index) if known else None
