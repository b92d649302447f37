"""The campaign API's shapes: campaigns with their offers and audience, the audience preview, lifecycle actions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from crm_kit.shapes import Strict, ZonedTime

Objective = Literal["retention", "upsell", "cross_sell", "win_back", "care"]
Channel = Literal["sms", "email", "push", "outbound_call", "store"]
OfferKind = Literal["plan_upgrade", "data_pack", "discount", "handset", "loyalty_points"]
Status = Literal["draft", "scheduled", "running", "completed", "cancelled"]
Code = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class OfferIn(Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: OfferKind = Field(description="升档, 流量包, 折扣, 终端, 积分")
    cost_fen: int = Field(ge=0, le=10**10, description="What one acceptance costs the operator, in fen")
    expected_value_fen: int = Field(ge=0, le=10**10, description="Revenue one acceptance is expected to bring, in fen")
    plan_code: str | None = Field(
        None, min_length=1, max_length=64, description="plan_upgrade: the plan a plan change must reach to count"
    )
    min_recharge_fen: int | None = Field(None, gt=0, description="A recharge of at least this counts as taking it up")
    addon_code: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="An order of this add-on (叠加包: data, voice, SMS, roaming pack) counts as taking it up",
    )


class OfferOut(BaseModel):
    id: str
    code: str
    name: str
    kind: OfferKind
    cost_fen: int
    expected_value_fen: int
    plan_code: str | None
    min_recharge_fen: int | None
    addon_code: str | None


class AudienceIn(Strict):
    segments: list[str] = Field(default_factory=list, description="Members of any of these segments (客户群)")
    rule: dict[str, Any] | None = Field(None, description="And matching this rule (the kit's rule language)")


class TriggerIn(Strict):
    churn_band: Literal["high", "medium", "low"] = Field(description="Join as the churn band moves to this (离网风险)")
    value_tiers: list[Literal["high", "mid", "low"]] = Field(
        default_factory=list, description="Only customers of these value tiers (价值分层); empty: any"
    )


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    objective: Objective = Field(description="retention 维系, upsell 升档, cross_sell 交叉, win_back 挽回, care 关怀")
    channels: list[Channel] = Field(min_length=1, max_length=4, description="In order of preference")
    audience: AudienceIn | None = None
    trigger: TriggerIn | None = Field(
        None, description="Triggered (事件触发): customers join while it runs, as the churn model moves them"
    )
    offers: list[OfferIn] = Field(default_factory=list, max_length=10)
    holdout_share: Decimal | None = Field(
        None, ge=0, le=Decimal("0.5"), decimal_places=3, description="Control group share (对照组)"
    )
    holdout_key: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Campaigns with the same key and share hold out the same customers (a standing control group "
        "across a programme's waves, 全局对照组); default: the campaign's own id",
    )
    priority: int = Field(50, ge=0, le=100, description="Higher wins a customer claimed by overlapping campaigns")
    response_window_days: int | None = Field(None, ge=1, le=180)
    starts_at: ZonedTime
    ends_at: ZonedTime


class CampaignOut(BaseModel):
    id: str
    name: str
    description: str | None
    objective: Objective
    purpose: Literal["marketing", "service"]
    status: Status
    channels: list[Channel]
    audience: dict[str, Any]
    trigger: dict[str, Any] | None
    offers: list[OfferOut]
    holdout_share: Decimal
    holdout_key: str
    priority: int
    response_window_days: int
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    updated_at: datetime
    scheduled_at: datetime | None
    launched_at: datetime | None
    finished_at: datetime | None
    cancel_reason: str | None
    treatment: int = Field(description="Customers assigned to treatment at launch")
    control: int = Field(description="Customers held out as control at launch")


class PreviewOut(BaseModel):
    count: int = Field(description="Customers the audience holds now")
    treatment: int
    control: int
    sample: list[str] = Field(description="The first customer ids, for a look")


class CancelIn(Strict):
    reason: str = Field(min_length=1, max_length=500)


class DispatchOut(BaseModel):
    sent: int
    deferred: int = Field(description="Held back by quiet hours; they go when the night ends")
    suppressed: dict[str, int] = Field(description="By the contact policy's reason")


class ContactsOut(BaseModel):
    sent: dict[str, int] = Field(description="By channel")
    deferred: int
    suppressed: dict[str, int] = Field(description="By reason: no_consent, do_not_disturb, frequency_cap, …")


class ReceiptIn(Strict):
    contact_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="As it was sent")
    status: Literal["delivered", "failed"]
    at: ZonedTime = Field(description="When the channel delivered it or gave up")
    error: str | None = Field(
        None, min_length=1, max_length=200, description="failed: the channel's reason (e.g. its status code)"
    )

    @model_validator(mode="after")
    def _error_only_on_failure(self) -> ReceiptIn:
        if self.error is not None and self.status != "failed":
            raise ValueError("error: only a failed receipt carries an error")
        return self


class DeliveriesIn(Strict):
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=1000)


class DeliveriesOut(BaseModel):
    recorded: int = Field(description="Receipts that changed a contact's delivery")
    unchanged: int = Field(description="Repeats, and failures reported after a delivery")


class GroupOut(BaseModel):
    customers: int = Field(description="Assigned to the group")
    contacted: int = Field(description="Sent a contact (control: never)")
    delivered: int = Field(description="Of those, reported delivered by the channel (送达)")
    responded: int = Field(description="Took an offer up within the window (响应)")
    value_fen: int = Field(description="The responses at the offers' expected value")
    churned: int = Field(description="Retention: left with no line open within 60 days of assignment")


class UpliftOut(BaseModel):
    treatment_rate: float
    control_rate: float
    uplift: float = Field(description="Treatment rate − control rate")
    ci_low: float
    ci_high: float
    confidence: float
    z: float | None
    p_value: float | None = Field(description="Two-proportion score test")
    significant: bool


class OfferReportOut(BaseModel):
    """One offer: who was offered it, who took it up in each group (of the same group sizes as the campaign)."""

    offer_id: str
    code: str
    name: str
    contacted: int = Field(description="Treated customers sent a contact carrying this offer")
    delivered: int
    treatment_responded: int
    control_responded: int
    value_fen: int = Field(description="The treated's take-ups at the offer's expected value")
    cost_fen: int = Field(description="The treated's take-ups at the offer's cost")
    response: UpliftOut | None
    incremental_revenue_fen: int | None
    roi: Decimal | None


class ReportOut(BaseModel):
    """活动效果评估: treatment against control."""

    campaign_id: str
    objective: Objective
    treatment: GroupOut
    control: GroupOut
    response: UpliftOut | None = Field(description="None until both groups hold someone")
    retention: UpliftOut | None = Field(description="Retention campaigns: churn rates (negative uplift = kept)")
    incremental_revenue_fen: int | None
    cost_fen: int = Field(description="The offers the treated took up, at their cost")
    roi: Decimal | None = Field(description="(incremental revenue − cost) / cost")
    offers: list[OfferReportOut] = Field(description="The same figures for each offer (by code)")


class CustomerContactOut(BaseModel):
    contact_id: str
    campaign_id: str
    campaign_name: str
    objective: str
    purpose: Literal["marketing", "service"]
    channel: str | None = Field(description="The channel it went (or will go) on; none when suppressed before one")
    status: Literal["sent", "deferred", "suppressed"]
    reason: str | None = Field(description="Why it was deferred or suppressed (no_consent, quiet_hours, …)")
    offer_code: str | None
    offer_name: str | None
    planned_at: str = Field(description="When the dispatch decided it, China Standard Time (+08:00)")
    sent_at: str | None
    not_before: str | None = Field(description="Deferred: when it may go")
    delivery: Literal["delivered", "failed"] | None = Field(description="What the channel reported; none: no receipt")
    delivery_at: str | None
    responded_at: str | None = Field(description="When the customer took up an offer of this campaign, if they did")
