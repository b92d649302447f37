"""TMF629 Customer shapes, with the CRM's line list as an extension (`@type: TelecomCustomer`)."""

from __future__ import annotations

from pydantic import Field

from crm_customer.schemas.common import TmfModel


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
