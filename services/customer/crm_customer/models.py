"""Tables the customer service owns: parties, billing accounts and lines; consents; segments; key accounts; the
privacy records; and its projections of the other systems' events (billing, tickets, scores, campaign contacts)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, BigId, UtcDateTime


def SearchKey(length: int) -> String:
    """A column searched by prefix: byte order ("C" collation) on PostgreSQL so a range scan on the index finds
    every value that starts with the prefix, whatever the database's locale."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")  # type: ignore[return-value]


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
    name_key: Mapped[str | None] = mapped_column(SearchKey(200), index=True, doc="name case-folded, for search")
    source: Mapped[str] = mapped_column(String(16), default="boss", doc="boss: learnt from the feed; crm: entered")
    gender: Mapped[str | None] = mapped_column(String(8))
    birth_date: Mapped[date | None] = mapped_column(Date)
    registration_no: Mapped[str | None] = mapped_column(
        SearchKey(32), index=True, doc="organisation: unified social credit code (统一社会信用代码)"
    )
    industry: Mapped[str | None] = mapped_column(String(64))
    key_account: Mapped[bool] = mapped_column(Boolean, default=False, index=True, doc="大客户")
    key_account_tier: Mapped[str | None] = mapped_column(String(16), doc="strategic, gold, silver")
    account_manager: Mapped[str | None] = mapped_column(String(128), index=True, doc="客户经理: the user id")
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="pseudonymised on the customer's request")
    merged_into: Mapped[str | None] = mapped_column(String(64), index=True, doc="the surviving duplicate")


class BillingAccount(Base):
    """The account a customer's lines are billed to (账户)."""

    __tablename__ = "billing_account"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    name: Mapped[str | None] = mapped_column(String(200))
    account_type: Mapped[str] = mapped_column(String(16), default="individual", doc="individual, group, branch")
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_account.id"), index=True, doc="group customer → branch accounts (集团→分支)"
    )
    status: Mapped[str] = mapped_column(String(16), default="active")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


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


# --- the party model beyond the BOSS feed: contact media, characteristics ------------------------------------------


class ContactMedium(Base):
    """A way to reach the customer (联系方式) entered in the CRM: email, phone, postal address, ..."""

    __tablename__ = "contact_medium"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    medium_type: Mapped[str] = mapped_column(String(16), doc="mobile, email, phone, postal, fax")
    value: Mapped[str] = mapped_column(String(300))
    preferred: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CustomerCharacteristic(Base):
    """A named attribute of the customer (TMF `characteristic`) the CRM keeps beyond its own columns."""

    __tablename__ = "customer_characteristic"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    value_type: Mapped[str] = mapped_column(String(16), default="string")


# --- what segments and the 360 view read: one row of facts per customer -------------------------------------------


class CustomerMetrics(Base):
    """The customer's current facts (客户画像指标), kept in step as events arrive, and the built-in tiers derived
    from them. One flat row per customer so a segment rule over a million customers is one indexed scan."""

    __tablename__ = "customer_metrics"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    arpu_fen: Mapped[int | None] = mapped_column(BigInteger, index=True)
    prev_arpu_fen: Mapped[int | None] = mapped_column(BigInteger, doc="ARPU of the three months before")
    outstanding_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_invoices: Mapped[int] = mapped_column(Integer, default=0)
    active_lines: Mapped[int] = mapped_column(Integer, default=0)
    total_lines: Mapped[int] = mapped_column(Integer, default=0)
    first_activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="tenure (在网时长) starts here")
    voice_minutes_30d: Mapped[int] = mapped_column(Integer, default=0)
    sms_30d: Mapped[int] = mapped_column(Integer, default=0)
    data_mb_30d: Mapped[int] = mapped_column(Integer, default=0)
    days_active_30d: Mapped[int] = mapped_column(Integer, default=0)
    last_active_on: Mapped[date | None] = mapped_column(Date)
    open_tickets: Mapped[int] = mapped_column(Integer, default=0)
    last_csat: Mapped[int | None] = mapped_column(Integer)
    churn_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 4), index=True)
    bad_debt_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    value_tier: Mapped[str | None] = mapped_column(String(8), index=True, doc="high, mid, low (价值分层)")
    activity_tier: Mapped[str | None] = mapped_column(String(8), index=True, doc="high, mid, low, dormant")
    lifecycle_stage: Mapped[str | None] = mapped_column(
        String(12), index=True, doc="new, growing, stable, declining, at_risk, churned (生命周期)"
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TierCutoff(Base):
    """A threshold the built-in tiers use, recomputed from the population (e.g. the ARPU at the 80th percentile)."""

    __tablename__ = "tier_cutoff"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    population: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Segment(Base):
    """A group of customers (客户群): built in (a tier) or defined by a rule over profile and projected facts."""

    __tablename__ = "segment"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(8), doc="builtin or rule")
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="active")
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SegmentMember(Base):
    """A customer in a rule segment, since when."""

    __tablename__ = "segment_member"

    segment_id: Mapped[str] = mapped_column(ForeignKey("segment.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)


# --- key accounts (大客户) ---------------------------------------------------------------------------------------


class KeyAccountAssignment(Base):
    """Every change of a key account's manager or tier: from whom, to whom, why, by whom."""

    __tablename__ = "key_account_assignment"
    __table_args__ = (Index("ix_key_account_assignment_customer_seq", "customer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    from_manager: Mapped[str | None] = mapped_column(String(128))
    to_manager: Mapped[str | None] = mapped_column(String(128))
    tier: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300))
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- privacy (PIPL): who saw personal data, erasures, merges ------------------------------------------------------


class PiiAccess(Base):
    """An unmasked read of personal data (敏感信息查看): who, what, when, why. Append-only."""

    __tablename__ = "pii_access"
    __table_args__ = (Index("ix_pii_access_customer_at", "customer_id", "at"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    roles: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(String(200), doc="which personal fields were shown unmasked")
    reason: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(200), doc="method and path")
    request_id: Mapped[str | None] = mapped_column(String(64))


class CustomerErasure(Base):
    """The customer was pseudonymised at their request (删除权): kept so the erasure is provable and not undone."""

    __tablename__ = "customer_erasure"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(300))
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CustomerMerge(Base):
    """A duplicate customer folded into the survivor (客户合并): its accounts, lines and history moved over."""

    __tablename__ = "customer_merge"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[str] = mapped_column(String(64), index=True)
    merged_id: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str | None] = mapped_column(String(300))
    merged_by: Mapped[str] = mapped_column(String(128))
    merged_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- projections of the other services' events: tickets, scores, campaign contacts -------------------------------


class TicketView(Base):
    """A complaint or trouble ticket (投诉/故障单) about the customer, as ticketing last reported it."""

    __tablename__ = "ticket_view"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), index=True)
    ticket_type: Mapped[str | None] = mapped_column(String(16), doc="complaint, trouble, inquiry")
    category: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24), doc="TMF621 state: acknowledged, inProgress, resolved, closed, ...")
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sla_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    csat_score: Mapped[int | None] = mapped_column(Integer, doc="1-5, from the satisfaction survey (满意度)")
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RiskScore(Base):
    """The latest churn (离网) or bad-debt (坏账) score of the customer, with the reasons the model gave."""

    __tablename__ = "risk_score"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    model_kind: Mapped[str] = mapped_column(String(16), primary_key=True, doc="churn or bad_debt")
    score: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    risk_band: Mapped[str] = mapped_column(String(8), doc="high, medium, low")
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(64))
    scored_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CampaignContactView(Base):
    """A campaign's contact with the customer (营销接触) and the customer's response, as campaign reported it."""

    __tablename__ = "campaign_contact_view"
    __table_args__ = (Index("ix_campaign_contact_view_customer_at", "customer_id", "contacted_at"),)

    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    offer_code: Mapped[str | None] = mapped_column(String(64))
    offer_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), doc="sent, delivered, failed, responded")
    response: Mapped[str | None] = mapped_column(String(32), doc="accepted, declined, ...")
    contacted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)
