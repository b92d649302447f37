"""Tables the campaign service owns: its own view of the customers it may contact (profile, tiers, segments,
risk scores, consents, do-not-disturb, open complaints: all from events), and the campaigns with their offers,
the treatment/control assignment of the audience, the contacts and the responses."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, MetaData, Numeric, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- the customers as the campaign service sees them (from customer.*, churn.score, ticketing.ticket) ---------------


class Customer(Base):
    """A customer an audience may hold: what its rules select on and what the contact policy checks."""

    __tablename__ = "customer"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_type: Mapped[str | None] = mapped_column(String(16), doc="individual or organization (政企)")
    region: Mapped[str | None] = mapped_column(String(16), index=True)
    status: Mapped[str | None] = mapped_column(String(16), doc="active, suspended, terminated")
    active_lines: Mapped[int | None] = mapped_column(Integer)
    value_tier: Mapped[str | None] = mapped_column(String(16), index=True, doc="high, mid, low (价值分层)")
    activity_tier: Mapped[str | None] = mapped_column(String(16))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(16))
    churn_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    churn_band: Mapped[str | None] = mapped_column(String(8), index=True, doc="high, medium, low (离网风险)")
    bad_debt_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    bad_debt_band: Mapped[str | None] = mapped_column(String(8))
    dnd_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    dnd_until: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="do-not-disturb (免打扰) ends; None: until lifted"
    )
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="erased (PIPL): never contacted again")
    merged_into: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Consent(Base):
    """The customer's word on a channel for a purpose (营销/服务通知), the latest given."""

    __tablename__ = "consent"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SegmentMember(Base):
    """Membership of the customer service's segments (客户群), as customer.segment tells it."""

    __tablename__ = "segment_member"

    segment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    segment_name: Mapped[str] = mapped_column(String(100))
    joined_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Complaint(Base):
    """A complaint ticket (投诉) of the customer; open ones keep marketing away."""

    __tablename__ = "complaint"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    open: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


# --- campaigns ---------------------------------------------------------------------------------------------------


class Campaign(Base):
    """A campaign (营销活动): draft → scheduled → running → completed, or cancelled on the way."""

    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_status_window", "status", "starts_at", "ends_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000))
    objective: Mapped[str] = mapped_column(String(16), doc="retention, upsell, cross_sell, win_back, care")
    status: Mapped[str] = mapped_column(String(16), index=True)
    channels: Mapped[list[str]] = mapped_column(JSON, doc="in order of preference")
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, doc="{segments: [...], rule: {...}}; empty: none yet")
    trigger: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, doc="triggered (事件触发): {churn_band, value_tiers}; customers join as their churn band moves there"
    )
    holdout_share: Mapped[Decimal] = mapped_column(Numeric(4, 3), doc="the control group's share (对照组)")
    holdout_key: Mapped[str] = mapped_column(
        String(64), doc="what the control draw hashes with the customer: the campaign's id unless it names another"
    )
    priority: Mapped[int] = mapped_column(Integer, doc="higher wins a customer claimed by overlapping campaigns")
    response_window_days: Mapped[int] = mapped_column(Integer, doc="a response counts this long after the contact")
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    scheduled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    launched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="completed or cancelled")
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    dispatch_lease: Mapped[str | None] = mapped_column(String(32), doc="the dispatch run holding the campaign")
    dispatch_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="free again after this")
    settled_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime,
        doc="(wall clock) a dispatch pass that began then left every treatment customer a final contact, none "
        "deferred: the calendar passes the campaign by unless a customer joined since",
    )
    treatment_joined_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime, doc="(wall clock) a trigger last added a treatment customer"
    )


class Offer(Base):
    """What a campaign offers (优惠): its cost to the operator and the value it is expected to bring, and what in the
    BOSS's events counts as taking it up."""

    __tablename__ = "offer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), doc="plan_upgrade, data_pack, discount, handset, loyalty_points")
    cost_fen: Mapped[int] = mapped_column(BigInteger, doc="what one acceptance costs the operator")
    expected_value_fen: Mapped[int] = mapped_column(BigInteger, doc="the revenue one acceptance is expected to bring")
    plan_code: Mapped[str | None] = mapped_column(String(64), doc="plan_upgrade: the plan a plan change must reach")
    min_recharge_fen: Mapped[int | None] = mapped_column(BigInteger, doc="a recharge of at least this takes it up")
    addon_code: Mapped[str | None] = mapped_column(String(32), doc="an order of this add-on (叠加包) takes it up")


class Assignment(Base):
    """Which group a customer of the audience is in (实验组/对照组): decided once, at launch, reproducibly."""

    __tablename__ = "assignment"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    group: Mapped[str] = mapped_column(String(16), doc="treatment or control")
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Contact(Base):
    """One planned contact (触达) of a treatment customer: sent on a channel, deferred to a later moment (quiet
    hours), or suppressed with the policy's reason. One per campaign and customer: a dispatch run that stops half-way
    resumes where it was, and a second run sends nobody twice."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("uq_contact_campaign_customer", "campaign_id", "customer_id", unique=True),
        Index("ix_contact_customer_sent", "customer_id", "sent_at"),
        Index("ix_contact_campaign_status", "campaign_id", "status", "not_before"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(64))
    offer_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16), doc="marketing or service: what the frequency cap counts")
    channel: Mapped[str | None] = mapped_column(String(16), doc="the channel it went (or will go) on")
    status: Mapped[str] = mapped_column(String(16), doc="sent, deferred or suppressed")
    reason: Mapped[str | None] = mapped_column(String(32), doc="why it was suppressed or deferred")
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="deferred: when it may go")
    planned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivery: Mapped[str | None] = mapped_column(
        String(16), doc="what the channel reported (状态报告): delivered or failed; None: no receipt yet"
    )
    delivery_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="when the channel says it happened")
    delivery_error: Mapped[str | None] = mapped_column(String(200), doc="failed: the channel's reason")


class OutboundMessage(Base):
    """What a channel would send (短信/外呼任务…): the default channel adapter's record, for the channel gateway (an
    SMS platform, the outbound call centre) to pick up."""

    __tablename__ = "outbound_message"

    contact_id: Mapped[str] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    campaign_id: Mapped[str] = mapped_column(String(64))
    offer_code: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Response(Base):
    """What a customer of a campaign's audience did within its window (响应): took up an offer (a plan change to the
    offered plan, a recharge of at least the offer's amount), or, for retention, left (no line open). Counted the
    same way in treatment and control, from the moment each was assigned, so their rates compare; one of each kind
    per customer and campaign."""

    __tablename__ = "response"
    __table_args__ = (Index("uq_response_campaign_customer_kind", "campaign_id", "customer_id", "kind", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    group: Mapped[str] = mapped_column(String(16), doc="treatment or control")
    kind: Mapped[str] = mapped_column(String(16), doc="accepted or churned")
    offer_id: Mapped[str | None] = mapped_column(String(64))
    value_fen: Mapped[int] = mapped_column(BigInteger, doc="accepted: the offer's expected value; churned: 0")
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    source_event_id: Mapped[str] = mapped_column(String(64))
