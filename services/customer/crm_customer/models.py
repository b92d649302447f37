"""Tables the customer service owns: customers, billing accounts, subscriptions (lines), consents and do-not-disturb;
its projections of the BOSS's billing events (bills, payments, arrears, account standing, daily usage); and the
customer's interaction timeline."""

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, BigId, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Customer(Base):
    """A party that holds lines with the operator (客户): a person or an organisation."""

    __tablename__ = "customer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    customer_type: Mapped[str | None] = mapped_column(String(16))
    id_card_no: Mapped[str | None] = mapped_column(String(18), index=True)
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BillingAccount(Base):
    """The account a customer's lines are billed to (账户)."""

    __tablename__ = "billing_account"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Subscription(Base):
    """A line (用户/号码): an MSISDN on a plan, as last reported by the BOSS."""

    __tablename__ = "subscription"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"), index=True)
    msisdn: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(String(32))
    plan_code: Mapped[str | None] = mapped_column(String(32))
    plan_name: Mapped[str | None] = mapped_column(String(100))
    monthly_fee_fen: Mapped[int | None] = mapped_column(Integer)
    payment_mode: Mapped[str | None] = mapped_column(String(16))
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contract_end: Mapped[date | None] = mapped_column(Date)
    dealer_code: Mapped[str | None] = mapped_column(String(32))
    recipient_operator: Mapped[str | None] = mapped_column(String(32))
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="occurred_at of the last applied BOSS event")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Consent(Base):
    """The customer's consent (营销授权) to be contacted on one channel for one purpose, as last recorded."""

    __tablename__ = "consent"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when the customer gave or withdrew it")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when the CRM recorded it")


class DoNotDisturb(Base):
    """The customer's do-not-disturb (免打扰) setting: no marketing on any channel while it is on."""

    __tablename__ = "do_not_disturb"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when it ends by itself; null: until revoked")
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when the customer asked for it")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when the CRM recorded it")


class ConsentHistory(Base):
    """Append-only log of every effective change of a consent or of do-not-disturb: who, what, when.

    `kind` = consent: `channel`, `purpose`, `granted` are set; `kind` = do_not_disturb: `enabled`, `until` are set.
    """

    __tablename__ = "consent_history"
    __table_args__ = (Index("ix_consent_history_customer_seq", "customer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    purpose: Mapped[str | None] = mapped_column(String(16))
    granted: Mapped[bool | None] = mapped_column(Boolean)
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- projections of the BOSS's billing events (账单/缴费/欠费/用量) ----------------------------------------------


class Invoice(Base):
    """A monthly bill (账单) as last issued: a re-sent invoice (same id) replaces the earlier one."""

    __tablename__ = "invoice"
    __table_args__ = (Index("ix_invoice_customer_period", "customer_id", "billing_period"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    account_id: Mapped[str] = mapped_column(String(64))
    billing_period: Mapped[str] = mapped_column(String(7), doc="账期, YYYY-MM")
    amount_due_fen: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date, doc="缴费截止日, China Standard Time")
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="occurred_at of the last applied issue")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BillingPayment(Base):
    """A payment (缴费), failed attempt (缴费失败), refund (退费) or prepaid top-up (充值), by its BOSS id."""

    __tablename__ = "billing_payment"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True, doc="received, failed, refunded, recharged")
    id: Mapped[str] = mapped_column(String(64), primary_key=True, doc="payment_id / refund_id / recharge_id")
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    invoice_id: Mapped[str | None] = mapped_column(String(64), index=True)
    payment_id: Mapped[str | None] = mapped_column(String(64), doc="refunded: the payment paid back")
    subscription_id: Mapped[str | None] = mapped_column(String(64), doc="recharged: the line topped up")
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    balance_after_fen: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UtcDateTime, doc="when paid / attempted / refunded / recharged")


class InvoiceOverdue(Base):
    """An unpaid bill past its due date (欠费), as of the latest billing.payment.overdue.v1 for it."""

    __tablename__ = "invoice_overdue"

    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    account_id: Mapped[str] = mapped_column(String(64))
    amount_overdue_fen: Mapped[int] = mapped_column(BigInteger)
    days_overdue: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AccountStanding(Base):
    """A billing account's credit limit (信用额度) and collection status (催缴状态), each as last reported."""

    __tablename__ = "account_standing"

    account_id: Mapped[str] = mapped_column(ForeignKey("billing_account.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    credit_limit_fen: Mapped[int | None] = mapped_column(BigInteger)
    credit_limit_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    collection_status: Mapped[str | None] = mapped_column(String(16))
    collection_outstanding_fen: Mapped[int | None] = mapped_column(BigInteger)
    collection_status_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class UsageDay(Base):
    """One line's usage for one day (日话单汇总): the day's totals; a corrected summary replaces the earlier one."""

    __tablename__ = "usage_day"
    __table_args__ = (Index("ix_usage_day_customer_date", "customer_id", "usage_date"),)

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    usage_date: Mapped[date] = mapped_column(Date, primary_key=True, doc="China Standard Time")
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    account_id: Mapped[str] = mapped_column(String(64))
    voice_minutes: Mapped[int] = mapped_column(Integer)
    sms_count: Mapped[int] = mapped_column(Integer)
    data_mb: Mapped[int] = mapped_column(Integer)
    roaming: Mapped[bool] = mapped_column(Boolean)
    roaming_voice_minutes: Mapped[int] = mapped_column(Integer)
    roaming_data_mb: Mapped[int] = mapped_column(Integer)
    charged_fen: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, doc="occurred_at of the summary applied")


class TimelineEntry(Base):
    """The interaction timeline (客户接触历史): one row per event about the customer, with a short summary."""

    __tablename__ = "timeline_entry"
    __table_args__ = (
        UniqueConstraint("customer_id", "source_event_id"),
        Index("ix_timeline_entry_customer_occurred", "customer_id", "occurred_at", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(16), doc="billing, ticket, campaign, score, consent")
    type: Mapped[str] = mapped_column(String(64), doc="the event type, e.g. billing.invoice.issued.v1")
    summary: Mapped[str] = mapped_column(String(500))
    source_event_id: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
