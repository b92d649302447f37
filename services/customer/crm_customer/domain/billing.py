"""Billing projections: bills, payments, arrears, account standing, usage (账单/缴费/欠费/用量), and reading them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Date, Select, bindparam, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain.lines import ADDON_ORDERED, SIM_SWAPPED, ensure_account, ensure_customer
from crm_customer.domain.timeline import add_to_timeline
from crm_customer.models import (
    AccountStanding,
    BillingPayment,
    Customer,
    Invoice,
    InvoiceOverdue,
    UsageDay,
)
from crm_kit.db import utcnow
from crm_kit.events import parse_rfc3339
from crm_kit.presentation import SHANGHAI, mask_msisdn, yuan
from crm_kit.sqljson import from_rows, rows_json

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


def _money(fen: int) -> str:
    return f"-¥{yuan(-fen)}" if fen < 0 else f"¥{yuan(fen)}"


SUBSCRIPTION_SUMMARY = {
    "billing.subscription.activated.v1": "activated (开户)",
    "billing.subscription.plan_changed.v1": "plan changed (套餐变更)",
    "billing.subscription.suspended.v1": "suspended (停机)",
    "billing.subscription.resumed.v1": "resumed (复机)",
    "billing.subscription.terminated.v1": "terminated (销户)",
    "billing.subscription.ported_out.v1": "ported out (携号转出)",
    SIM_SWAPPED: "SIM swapped (换卡)",
    ADDON_ORDERED: "ordered add-on (叠加包订购)",
}
ADDON_KIND_TERMS = {
    "data_pack": "流量包",
    "voice_pack": "语音包",
    "sms_pack": "短信包",
    "roaming_pack": "漫游包",
    "value_added": "增值业务",
}
SIM_SWAP_REASON_TERMS = {
    "lost": "挂失补卡",
    "damaged": "损坏换卡",
    "upgrade_5g": "4G换5G卡",
    "esim_conversion": "转eSIM",
    "other": "其他",
}
SIM_SWAP_CHANNEL_TERMS = {"store": "营业厅", "online": "网上营业厅/App", "hotline": "客服热线"}

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
    if event_type == SIM_SWAPPED:
        return _sim_swap_summary(line, data)
    if event_type == ADDON_ORDERED:
        return _addon_summary(line, data["addon"])
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


def _sim_swap_summary(line: str, data: dict[str, Any]) -> str:
    """A SIM swap says why and where, and warns: taking over a number by a swap is the usual first step of a
    fraudulent port-out (携号转网), so the agent checks the holder before porting the number out."""
    reason, channel = data["reason"], data["channel"]
    text = (
        f"Line {line} {SUBSCRIPTION_SUMMARY[SIM_SWAPPED]}: reason {reason} ({SIM_SWAP_REASON_TERMS[reason]}), "
        f"channel {channel} ({SIM_SWAP_CHANNEL_TERMS[channel]})"
    )
    if data.get("dealer_code"):
        text += f" at {data['dealer_code']}"
    return (
        f"{text}, new SIM ending {data['new_iccid'][-4:]}; a SIM swap often precedes a fraudulent port-out "
        "(携号转网): verify the holder before porting out"
    )


def _addon_summary(line: str, addon: dict[str, Any]) -> str:
    """What was ordered, what kind of add-on, what it costs and for how long: what an agent asks about a bill."""
    days = addon.get("validity_days")
    lasting = "renews monthly (月包)" if days is None else f"valid {days} day{'s' if days != 1 else ''}"
    return (
        f"Line {line} {SUBSCRIPTION_SUMMARY[ADDON_ORDERED]}: {addon['name']} "
        f"({addon['kind']}, {ADDON_KIND_TERMS[addon['kind']]}), {_money(addon['price_fen'])}, {lasting}"
    )


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


def invoices_of(customer_id: Any) -> Select[tuple[Invoice]]:
    return select(Invoice).where(Invoice.customer_id == customer_id)


def overdues_of(customer_id: Any) -> Select[tuple[InvoiceOverdue]]:
    return select(InvoiceOverdue).where(InvoiceOverdue.customer_id == customer_id)


def payments_of(customer_id: Any) -> Select[tuple[BillingPayment]]:
    return select(BillingPayment).where(BillingPayment.customer_id == customer_id)


def standings_of(customer_id: Any) -> Select[tuple[AccountStanding]]:
    return select(AccountStanding).where(AccountStanding.customer_id == customer_id)


def billing_parts(customer_id: Any) -> dict[str, Any]:
    """A customer's bills, overdue statements, payments and account standings as parts of a `sqljson` document,
    and 30-day usage between the bound days `first_day` and `last_day`: what the 360 view and the metrics
    refresh both read in their one statement."""
    return {
        "invoices": rows_json(invoices_of(customer_id)),
        "overdues": rows_json(overdues_of(customer_id)),
        "payments": rows_json(payments_of(customer_id)),
        "standings": rows_json(standings_of(customer_id)),
        "usage": rows_json(
            usage_totals(customer_id, bindparam("first_day", type_=Date), bindparam("last_day", type_=Date))
        ),
    }


def billing_from(found: Mapping[str, Any]) -> BillingSummary:
    """The summary of a document holding `billing_parts`."""
    return summarize_billing(
        from_rows(Invoice, found["invoices"]),
        from_rows(InvoiceOverdue, found["overdues"]),
        from_rows(BillingPayment, found["payments"]),
        from_rows(AccountStanding, found["standings"]),
    )


async def billing_summary(session: AsyncSession, customer_id: str) -> BillingSummary:
    return summarize_billing(
        list(await session.scalars(invoices_of(customer_id))),
        list(await session.scalars(overdues_of(customer_id))),
        list(await session.scalars(payments_of(customer_id))),
        list(await session.scalars(standings_of(customer_id))),
    )


def summarize_billing(
    invoices: list[Invoice],
    overdue_statements: list[InvoiceOverdue],
    payments: list[BillingPayment],
    accounts: list[AccountStanding],
) -> BillingSummary:
    """ARPU, spend trend and payment behaviour from the customer's bills, overdue statements and payments."""
    overdues = {o.invoice_id: o for o in overdue_statements}
    payments = sorted(payments, key=lambda p: (p.at, p.id))
    accounts = sorted(accounts, key=lambda a: a.account_id)
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


def activity_window(as_of: date) -> tuple[date, date]:
    """The 30 days ending `as_of`, inclusive."""
    return as_of - timedelta(days=ACTIVITY_DAYS - 1), as_of


def usage_totals(customer_id: Any, first_day: Any, last_day: Any) -> Select[Any]:
    """One row: use between the two days (inclusive), all lines together: totals, days with any use, days
    roaming, lines that used any. The arguments are values or bound parameters."""
    used = or_(UsageDay.voice_minutes > 0, UsageDay.sms_count > 0, UsageDay.data_mb > 0)
    return select(
        *(
            func.coalesce(func.sum(column), 0).label(column.key)
            for column in (
                UsageDay.voice_minutes,
                UsageDay.sms_count,
                UsageDay.data_mb,
                UsageDay.roaming_voice_minutes,
                UsageDay.roaming_data_mb,
            )
        ),
        func.count(distinct(case((used, UsageDay.usage_date)))).label("days_active"),
        func.count(distinct(case((UsageDay.roaming, UsageDay.usage_date)))).label("roaming_days"),
        func.count(distinct(case((used, UsageDay.subscription_id)))).label("lines"),
    ).where(UsageDay.customer_id == customer_id, UsageDay.usage_date >= first_day, UsageDay.usage_date <= last_day)


def activity(totals: Mapping[str, Any], as_of: date) -> Activity:
    """The `usage_totals` row of the window ending `as_of` as an `Activity`."""
    first_day, last_day = activity_window(as_of)
    return Activity(first_day=first_day, last_day=last_day, **totals)


async def usage_summary(session: AsyncSession, customer_id: str, as_of: date) -> Activity:
    totals = (await session.execute(usage_totals(customer_id, *activity_window(as_of)))).one()
    return activity(totals._mapping, as_of)


COLLECTION_SEVERITY = ("normal", "reminded", "soft_suspended", "hard_suspended", "with_agency", "written_off")


def worst_collection_status(statuses: list[str | None]) -> str | None:
    """The most serious collection status among the accounts (None when none was ever reported)."""
    known = [s for s in statuses if s in COLLECTION_SEVERITY]
    return max(known, key=COLLECTION_SEVERITY.index) if known else None
