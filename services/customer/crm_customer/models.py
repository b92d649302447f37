"""Tables the customer service owns: customers, billing accounts, subscriptions (lines), consents and do-not-disturb."""

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, MetaData, String
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
