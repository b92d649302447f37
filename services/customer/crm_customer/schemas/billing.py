"""Billing projection and timeline shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Amount(BaseModel):
    """Money: integer fen and the same as a decimal yuan string; never a float."""

    fen: int
    yuan: str = Field(description="Decimal yuan, e.g. '149.00'")


class MonthSpendOut(BaseModel):
    billing_period: str = Field(description="账期, YYYY-MM")
    amount_due: Amount = Field(description="What the month's bills asked for (应缴金额), all accounts together")
    invoices: int


class LastPaymentOut(BaseModel):
    kind: Literal["received", "recharged"] = Field(description="received: a bill payment (缴费); recharged: 充值")
    id: str
    amount: Amount
    channel: str | None
    invoice_id: str | None
    at: str


class PaymentBehaviourOut(BaseModel):
    status: Literal["in_arrears", "late_payer", "good", "no_history"] = Field(
        description="in_arrears (欠费): an overdue bill is unpaid; late_payer: all paid, but some after the due date"
    )
    invoices_paid_on_time: int
    invoices_paid_late: int
    invoices_unpaid: int
    overdue_invoices: int
    outstanding: Amount = Field(description="Overdue and still unpaid (欠费金额), from the BOSS's overdue notices")
    failed_payments: int
    last_payment: LastPaymentOut | None


class AccountStandingOut(BaseModel):
    account_id: str
    collection_status: str | None = Field(description="催缴状态 as last reported; null: never reported")
    collection_status_at: str | None
    collection_outstanding: Amount | None = Field(description="What the BOSS said the account owed at that change")
    credit_limit: Amount | None = Field(description="信用额度 as last reported; null: never reported")
    credit_limit_at: str | None


class BillingSummaryOut(BaseModel):
    customer_id: str
    arpu: Amount | None = Field(description="ARPU: mean of the last 3 billed months, whole fen; null: no bill yet")
    arpu_months: list[str]
    spend_trend: list[MonthSpendOut] = Field(description="The last 6 billed months, oldest first")
    payment: PaymentBehaviourOut
    collection_status: str | None = Field(description="The worst collection status over the customer's accounts")
    credit_limit: Amount | None = Field(description="Sum of the credit limits reported for the customer's accounts")
    accounts: list[AccountStandingOut]


class UsageSummaryOut(BaseModel):
    customer_id: str
    from_date: str = Field(description="First day of the window (China Standard Time)")
    to_date: str = Field(description="Last day of the window, inclusive")
    days: int
    voice_minutes: int
    sms_count: int
    data_mb: int
    roaming_voice_minutes: int
    roaming_data_mb: int
    days_active: int = Field(description="Days with any voice, SMS or data on any line")
    roaming_days: int = Field(description="Days with any use while roaming (漫游)")
    active_lines: int = Field(description="Lines with any use in the window")


TimelineKind = Literal["billing", "ticket", "campaign", "score", "consent"]


class TimelineEntryOut(BaseModel):
    id: int
    customer_id: str
    occurred_at: str = Field(description="When it happened, China Standard Time (+08:00)")
    kind: TimelineKind
    type: str = Field(description="The event type, e.g. billing.invoice.issued.v1")
    summary: str
    source_event_id: str
