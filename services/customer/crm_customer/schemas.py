"""TMF629 Customer shapes, with the CRM's line list as an extension (`@type: TelecomCustomer`); consent shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool


class TmfModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class RelatedRef(TmfModel):
    id: str
    href: str | None = None
    name: str | None = None
    referred_type: str = Field(alias="@referredType")


class Characteristic(TmfModel):
    name: str
    value: str | None
    value_type: str = Field("string", alias="valueType")


class ContactMedium(TmfModel):
    medium_type: str = Field(alias="mediumType")
    preferred: bool = False
    characteristic: dict[str, str | None]


class Money(TmfModel):
    """Amounts leave the CRM as a decimal string in yuan and as integer fen; never a float."""

    unit: str = "CNY"
    value: str = Field(description="Decimal yuan, e.g. '129.00'")
    value_fen: int = Field(alias="valueFen")


class LinePlan(TmfModel):
    code: str | None
    name: str | None
    monthly_fee: Money | None = Field(alias="monthlyFee")


class Line(TmfModel):
    """A subscription (line) of the customer; the MSISDN is masked."""

    id: str
    msisdn: str
    status: str
    status_reason: str | None = Field(alias="statusReason")
    account_id: str = Field(alias="accountId")
    plan: LinePlan
    payment_mode: str | None = Field(alias="paymentMode")
    activation_date: str | None = Field(alias="activationDate")
    end_date: str | None = Field(alias="endDate")
    contract_end: str | None = Field(alias="contractEnd")


class ValidFor(TmfModel):
    start_date_time: str = Field(alias="startDateTime")


class TmfCustomer(TmfModel):
    id: str
    href: str
    type: str = Field("TelecomCustomer", alias="@type")
    base_type: str = Field("Customer", alias="@baseType")
    name: str | None
    status: str
    valid_for: ValidFor = Field(alias="validFor")
    last_update: str = Field(alias="lastUpdate")
    engaged_party: RelatedRef = Field(alias="engagedParty")
    account: list[RelatedRef]
    contact_medium: list[ContactMedium] = Field(alias="contactMedium")
    characteristic: list[Characteristic]
    subscription: list[Line]


# --- consents (营销授权) and do-not-disturb (免打扰): /api/v1/customers/{id}/consents, /do-not-disturb ------------

Channel = Literal["sms", "email", "push", "outbound_call"]
Purpose = Literal["marketing", "service"]
Source = Literal["app", "web", "store", "hotline", "sms_reply", "boss", "agent"]


def _rfc3339_string(value: Any) -> Any:
    """A date-time travels as an RFC 3339 string with its zone offset; not a number of seconds."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with a zone offset")
    return value


ZonedTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_string)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConsentIn(Strict):
    """The customer gives (`granted: true`) or withdraws (`false`) consent on one channel for one purpose."""

    granted: StrictBool
    source: Source = Field(description="Where the customer said so: app, web, store (营业厅), hotline, sms_reply, …")
    recorded_at: ZonedTime | None = Field(
        None, description="When the customer said so (default: now); not in the future, not older than the record"
    )


class DoNotDisturbIn(Strict):
    """The customer asks for no marketing at all (免打扰), optionally until a moment, or lifts it."""

    enabled: StrictBool
    until: ZonedTime | None = Field(None, description="When it ends by itself; only with enabled, in the future")
    source: Source
    recorded_at: ZonedTime | None = Field(None, description="When the customer asked (default: now)")


class ConsentOut(BaseModel):
    channel: Channel
    purpose: Purpose
    granted: bool = Field(description="The consent in force: as recorded, else the default (marketing no, service yes)")
    recorded: bool = Field(description="false: nothing on record, the default applies")
    contactable: bool = Field(description="May be contacted now for this purpose on this channel (do-not-disturb too)")
    source: Source | None
    recorded_at: str | None
    updated_at: str | None


class DoNotDisturbOut(BaseModel):
    enabled: bool = Field(description="As recorded")
    active: bool = Field(description="In force now: enabled and `until`, if any, not yet passed")
    until: str | None
    source: Source | None
    recorded_at: str | None
    updated_at: str | None


class CustomerConsentsOut(BaseModel):
    customer_id: str
    href: str
    consents: list[ConsentOut] = Field(description="Every channel × purpose")
    do_not_disturb: DoNotDisturbOut


class ConsentHistoryOut(BaseModel):
    """One change, as it happened. kind=consent: channel, purpose, granted; kind=do_not_disturb: enabled, until."""

    id: int
    kind: Literal["consent", "do_not_disturb"]
    channel: Channel | None
    purpose: Purpose | None
    granted: bool | None
    enabled: bool | None
    until: str | None
    source: Source
    recorded_at: str
    changed_by: str
    changed_at: str


# --- billing projections and the timeline: /api/v1/customers/{id}/billing-summary, /usage-summary, /timeline ------


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
