"""Segment (客户分群) shapes: rules, previews, segments, members, the value cutoffs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from crm_customer.schemas.billing import Amount
from crm_kit.shapes import Strict

RULE_DESCRIPTION = (
    'A rule: {"all": [..]}, {"any": [..]}, {"not": {..}} or a condition {"field": "arpu_fen", "op": "gte", '
    '"value": 10000}. ops: eq, ne, gt, gte, lt, lte, in (a list), between ([low, high]), is_null (true/false). '
    "fields: region, customer_type, status, key_account, key_account_tier, account_manager, created_at, source, "
    "arpu_fen, prev_arpu_fen, outstanding_fen, overdue_invoices, active_lines, total_lines, voice_minutes_30d, "
    "sms_30d, data_mb_30d, days_active_30d, open_tickets, last_csat, churn_score, bad_debt_score, value_tier, "
    "activity_tier, lifecycle_stage, tenure_days. At most 8 levels deep and 50 conditions."
)
Rule = dict[str, Any]


class PreviewIn(Strict):
    rule: Rule = Field(description=RULE_DESCRIPTION)


class SampleCustomer(BaseModel):
    customer_id: str
    name: str | None = Field(description="Masked (张*): enough to recognise, not to identify")


class PreviewOut(BaseModel):
    count: int = Field(description="Customers the rule selects now (merged and erased customers never count)")
    sample: list[SampleCustomer] = Field(description="The first 20 by customer id")


class SegmentIn(Strict):
    name: str = Field(min_length=1, max_length=100, description="Unique among segments")
    description: str | None = Field(None, max_length=500)
    rule: Rule = Field(description=RULE_DESCRIPTION)


class SegmentPatch(Strict):
    """Merge-patch: what is sent changes; a new rule re-evaluates the membership at once."""

    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    rule: Rule | None = Field(None, description=RULE_DESCRIPTION)


class SegmentOut(BaseModel):
    id: str
    href: str
    name: str
    description: str | None
    kind: Literal["builtin", "rule"] = Field(description="builtin: a tier (read-only); rule: defined by its rule")
    dimension: Literal["value", "activity", "lifecycle"] | None = Field(description="builtin: the tier's dimension")
    rule: Rule = Field(description="builtin: the equivalent rule over the tier column")
    status: Literal["active", "archived"]
    member_count: int = Field(description="rule: as last evaluated; builtin: now")
    evaluated_at: str | None
    created_by: str | None
    created_at: str | None
    updated_at: str | None


class EvaluationOut(BaseModel):
    segment: SegmentOut
    joined: int = Field(description="Customers who joined (one membership_changed event each)")
    left: int = Field(description="Customers who left (one membership_changed event each)")


class MemberOut(BaseModel):
    customer_id: str
    name: str | None = Field(description="Masked (张*)")
    since: str | None = Field(description="rule segments: when the customer joined; builtin: null")


class CutoffsOut(BaseModel):
    value_high_min: Amount = Field(description="High value (高价值) from this ARPU: the 80th percentile")
    value_mid_min: Amount = Field(description="Mid value from this ARPU: the 40th percentile")
    population: int = Field(description="Customers with an ARPU when computed")
    from_population: bool = Field(description="false: too few customers (< 100), the defaults 150/60 yuan apply")
    computed_at: str | None


class RecomputeOut(BaseModel):
    cutoffs: CutoffsOut
    retiered: int = Field(description="Customers whose value tier changed (one tier_changed event each)")
    remaining: int = Field(description="Customers still to re-tier (more than one call's cap): call again")
