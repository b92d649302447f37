"""The 360° customer view (客户360视图) and the lists behind it: tickets, risk scores, campaign contacts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from crm_customer.schemas.billing import Amount, MonthSpendOut, TimelineEntryOut, UsageSummaryOut


class ProfileOut(BaseModel):
    id: str
    name: str | None
    customer_type: str | None = Field(description="individual or organization")
    status: str = Field(description="active, suspended (停机) or inactive")
    region: str | None
    created_at: str
    id_card_no: str | None = Field(description="身份证号, masked unless pii:read with X-Access-Reason")
    key_account: bool = Field(description="大客户")
    key_account_tier: str | None = Field(description="strategic, gold, silver")
    account_manager: str | None = Field(description="客户经理: the user id")


class AccountOut(BaseModel):
    id: str
    name: str | None
    account_type: str = Field(description="individual, group (集团) or branch (分支)")
    parent_id: str | None = Field(description="The group account above a branch account")
    status: str


class LineOut(BaseModel):
    id: str
    msisdn: str | None = Field(description="Masked unless pii:read with X-Access-Reason")
    account_id: str
    status: str
    plan_code: str | None
    plan_name: str | None
    monthly_fee: Amount | None
    payment_mode: str | None
    activated_at: str | None
    contract_end: str | None = Field(description="合约到期日, YYYY-MM-DD")


class TiersOut(BaseModel):
    """The built-in tiers; null while unknown (e.g. no bill yet)."""

    value_tier: str | None = Field(description="high, mid, low (价值分层)")
    activity_tier: str | None = Field(description="high, mid, low, dormant (活跃度)")
    lifecycle_stage: str | None = Field(description="new, growing, stable, declining, at_risk, churned (生命周期)")


class SegmentRefOut(BaseModel):
    id: str
    name: str


class BillingOut(BaseModel):
    arpu: Amount | None = Field(description="Mean of the last 3 billed months; null: no bill yet")
    spend_trend: list[MonthSpendOut] = Field(description="The last 6 billed months, oldest first")
    payment_status: Literal["in_arrears", "late_payer", "good", "no_history"]
    outstanding: Amount = Field(description="Overdue and still unpaid (欠费金额)")
    overdue_invoices: int


class TicketOut(BaseModel):
    ticket_id: str
    ticket_type: str | None = Field(
        description="complaint (投诉), trouble (故障), inquiry (咨询); null: not reported yet"
    )
    category: str | None
    title: str | None
    priority: str | None
    state: str = Field(description="TMF621 state")
    opened_at: str | None
    sla_due_at: str | None
    sla_breached: bool = Field(description="Still open past its SLA due time (超时)")
    resolved_at: str | None
    csat_score: int | None = Field(description="1-5 (满意度)")


class TicketsOut(BaseModel):
    open_count: int
    open: list[TicketOut] = Field(description="Open tickets, newest first, at most 20")
    last_csat: int | None = Field(description="The customer's newest satisfaction score, 1-5")


class ReasonOut(BaseModel):
    feature: str
    description: str
    contribution: float = Field(description="Its contribution to the score (positive: raises the risk)")


class RiskScoreOut(BaseModel):
    model_kind: Literal["churn", "bad_debt"]
    score: str = Field(description="Probability 0..1 as a decimal string, e.g. '0.8731'")
    risk_band: Literal["high", "medium", "low"]
    model_version: str
    scored_at: str
    top_reasons: list[ReasonOut] = Field(description="The reasons that raise the risk most, at most 3 (360 view)")


class RiskOut(BaseModel):
    churn: RiskScoreOut | None = Field(description="离网预警; null: not scored yet")
    bad_debt: RiskScoreOut | None = Field(description="坏账预警; null: not scored yet")


class CampaignContactOut(BaseModel):
    contact_id: str
    campaign_id: str
    campaign_name: str | None
    channel: str = Field(
        description="sms, email, push, outbound_call, store; unknown until the contact itself is reported"
    )
    offer_code: str | None
    offer_name: str | None
    status: str = Field(description="sent or responded")
    response: str | None = Field(description="accepted, declined, clicked, opted_out")
    contacted_at: str
    responded_at: str | None


class View360Out(BaseModel):
    customer_id: str
    profile: ProfileOut
    accounts: list[AccountOut]
    lines: list[LineOut]
    tiers: TiersOut
    segments: list[SegmentRefOut] = Field(description="Rule segments (客户群) the customer is a member of")
    billing: BillingOut
    usage_30d: UsageSummaryOut
    tickets: TicketsOut
    risk: RiskOut
    campaign_contacts: list[CampaignContactOut] = Field(description="The latest 10, newest first")
    timeline: list[TimelineEntryOut] = Field(description="The first page of the timeline, newest first")
    timeline_next_offset: int | None = Field(
        description="Offset of the next page for GET …/timeline; null: nothing more"
    )
