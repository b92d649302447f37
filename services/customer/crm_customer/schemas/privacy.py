"""Privacy (PIPL) shapes: the audit of personal-data reads, export, erasure, merge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from crm_kit.shapes import Strict

ErasureReason = Literal["customer_request", "account_closed", "retention_expired", "regulator_order"]


class PiiAccessOut(BaseModel):
    """One unmasked read of a customer's personal data (敏感信息查看)."""

    id: int
    at: str = Field(description="China Standard Time (+08:00)")
    actor: str
    roles: list[str]
    customer_id: str
    fields: list[str] = Field(description="The personal fields shown unmasked")
    reason: str = Field(description="What the caller gave in X-Access-Reason")
    action: str = Field(description="Method and path")
    request_id: str | None


class ErasureIn(Strict):
    """Pseudonymise the customer (删除权, PIPL art. 47). The reason is a code: the event carries no free text."""

    reason: ErasureReason


class ErasureOut(BaseModel):
    customer_id: str
    erased_at: str
    requested_by: str
    reason: ErasureReason
    name: str | None = Field(description="The pseudonym the customer now goes by")


class MergeIn(Strict):
    """Fold the duplicate customer into this one (客户合并)."""

    duplicate_id: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(None, min_length=3, max_length=300)


class MergeOut(BaseModel):
    survivor_id: str
    merged_id: str
    merged_by: str
    merged_at: str
    reason: str | None
    moved: dict[str, int] = Field(description="Rows moved to the survivor, per kind")


class ExportOut(BaseModel):
    """Everything the customer service holds on the customer (个人信息副本): times in China Standard Time, money
    in integer fen (`*_fen`), numbers unmasked."""

    customer_id: str
    exported_at: str
    profile: dict[str, Any]
    contact_media: list[dict[str, Any]]
    characteristics: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    consent_history: list[dict[str, Any]]
    do_not_disturb: dict[str, Any] | None
    invoices: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    overdue: list[dict[str, Any]]
    account_standing: list[dict[str, Any]]
    usage_days: list[dict[str, Any]]
    metrics: dict[str, Any] | None
    tickets: list[dict[str, Any]]
    risk_scores: list[dict[str, Any]]
    campaign_contacts: list[dict[str, Any]]
    segment_memberships: list[dict[str, Any]]
    key_account_history: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    erasure: dict[str, Any] | None
    pii_access: list[dict[str, Any]] = Field(description="Who saw the customer's personal data, this export included")
