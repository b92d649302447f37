"""TMF629 Customer shapes, with the CRM's line list as an extension (`@type: TelecomCustomer`)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool, model_validator

from crm_kit.shapes import TmfModel


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


class KeyAccountInfo(TmfModel):
    """Key-account standing (大客户), kept by the key-account desk; read-only here."""

    is_key_account: bool = Field(alias="isKeyAccount")
    tier: str | None
    account_manager: str | None = Field(alias="accountManager")


class CustomerSegments(TmfModel):
    """The built-in tiers (价值/活跃分层, 生命周期); null until the customer's metrics are computed."""

    value_tier: str | None = Field(alias="valueTier")
    activity_tier: str | None = Field(alias="activityTier")
    lifecycle_stage: str | None = Field(alias="lifecycleStage")


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
    party_type: str = Field(alias="partyType", description="Individual or Organization")
    key_account: KeyAccountInfo = Field(alias="keyAccount")
    segments: CustomerSegments


# --- request bodies: create and merge-patch ---------------------------------------------------------------------


class CamelStrict(TmfModel):
    """A request body in TMF camelCase: an unknown field is a mistake worth naming."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="forbid")


MediumType = Literal["mobile", "phone", "fax", "email", "postal"]
MEDIUM_KEY = {
    "mobile": "phoneNumber",
    "phone": "phoneNumber",
    "fax": "faxNumber",
    "email": "emailAddress",
    "postal": "street1",
}
PHONE = re.compile(r"^\+?[0-9][0-9 -]{3,22}[0-9]$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class MediumCharacteristicIn(CamelStrict):
    contact_type: str | None = Field(None, alias="contactType", max_length=16)
    phone_number: str | None = Field(None, alias="phoneNumber", max_length=24)
    fax_number: str | None = Field(None, alias="faxNumber", max_length=24)
    email_address: str | None = Field(None, alias="emailAddress", max_length=254)
    street1: str | None = Field(None, max_length=300, description="The whole postal address (邮寄地址)")


class ContactMediumIn(CamelStrict):
    """One way to reach the customer; `characteristic` carries the one value its `mediumType` needs."""

    medium_type: MediumType = Field(alias="mediumType")
    preferred: StrictBool = False
    characteristic: MediumCharacteristicIn

    @model_validator(mode="after")
    def _one_value(self) -> ContactMediumIn:
        key = MEDIUM_KEY[self.medium_type]
        given = self.characteristic.model_dump(by_alias=True, exclude_none=True)
        given.pop("contactType", None)
        if set(given) != {key}:
            raise ValueError(f"a {self.medium_type} contact medium carries exactly characteristic.{key}")
        value = given[key].strip()
        if not value:
            raise ValueError(f"characteristic.{key} is empty")
        if key in ("phoneNumber", "faxNumber") and not PHONE.match(value):
            raise ValueError(f"characteristic.{key} is not a phone number")
        if key == "emailAddress" and not EMAIL.match(value):
            raise ValueError("characteristic.emailAddress is not an e-mail address")
        return self

    @property
    def value(self) -> str:
        return str(self.characteristic.model_dump(by_alias=True)[MEDIUM_KEY[self.medium_type]]).strip()


class CharacteristicIn(CamelStrict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    value: str = Field(max_length=500)
    value_type: Literal["string", "number", "boolean", "date"] = Field("string", alias="valueType")


Name = Annotated[str, Field(min_length=1, max_length=100, description="客户名称")]
Region = Annotated[str, Field(max_length=16, pattern=r"^[A-Z]{2}(-[A-Z0-9]{2,8})?$", description="归属地, e.g. GD-SZ")]
IdCard = Annotated[
    str, Field(min_length=18, max_length=18, description="18-character PRC resident ID (身份证号), checksum checked")
]
RegistrationNo = Annotated[
    str,
    Field(
        min_length=18,
        max_length=18,
        description="Organisation: unified social credit code (统一社会信用代码), checksum checked",
    ),
]


class CustomerCreate(CamelStrict):
    """A customer entered in the CRM (not fed by the BOSS): a person or an organisation."""

    name: Name
    customer_type: Literal["individual", "organization"] = Field(alias="customerType")
    region: Region
    id_card_no: IdCard | None = Field(None, alias="idCardNo")
    registration_no: RegistrationNo | None = Field(None, alias="registrationNo")
    gender: Literal["male", "female"] | None = None
    birth_date: date | None = Field(None, alias="birthDate")
    industry: str | None = Field(None, max_length=64)
    contact_medium: list[ContactMediumIn] = Field(default_factory=list, alias="contactMedium", max_length=20)
    characteristic: list[CharacteristicIn] = Field(default_factory=list, max_length=50)


class CustomerPatch(CamelStrict):
    """JSON merge-patch (RFC 7396) of a customer: a member present is set (null clears it), a member absent is
    kept; contactMedium and characteristic replace the whole list."""

    name: Name | None = None
    region: Region | None = None
    id_card_no: IdCard | None = Field(None, alias="idCardNo")
    registration_no: RegistrationNo | None = Field(None, alias="registrationNo")
    gender: Literal["male", "female"] | None = None
    birth_date: date | None = Field(None, alias="birthDate")
    industry: str | None = Field(None, max_length=64)
    contact_medium: list[ContactMediumIn] | None = Field(None, alias="contactMedium", max_length=20)
    characteristic: list[CharacteristicIn] | None = Field(None, max_length=50)


class SearchMatch(TmfModel):
    by: str = Field(description="name, phone, id_card, account or registration_no")
    msisdn: list[str] = Field(default_factory=list, description="The customer's numbers that matched (masked)")
    account_id: str | None = Field(None, alias="accountId")


class SearchHit(TmfModel):
    """A short summary of a customer found by search (客户查询)."""

    id: str
    href: str
    name: str | None
    customer_type: str | None = Field(alias="customerType")
    status: str
    region: str | None
    id_card_no: str | None = Field(alias="idCardNo", description="Masked unless pii:read with a reason")
    registration_no: str | None = Field(alias="registrationNo")
    key_account: bool = Field(alias="keyAccount")
    value_tier: str | None = Field(alias="valueTier")
    exact: bool = Field(description="The value matched whole, not only as a prefix")
    matched: SearchMatch
