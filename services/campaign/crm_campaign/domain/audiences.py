"""Audiences (目标客群): the customers a campaign is for — members of any of its segments (the customer service's,
as customer.segment tells) and matching its rule over the campaign's own view of customers (the kit's rule
language: profile, tiers, risk bands and scores, open complaints). Erased and merged customers are never in one.

An audience is one SELECT: counting a million customers for a preview, or listing them at launch, is one scan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import control
from crm_campaign.models import Complaint, Customer, SegmentMember
from crm_kit import rules
from crm_kit.errors import InvalidInput
from crm_kit.rules import DECIMAL, INTEGER, TEXT, Field, Rule

BANDS = ("high", "medium", "low")
MAX_SEGMENTS = 20
SAMPLE_SIZE = 20

_open_complaints = (
    select(func.count())
    .where(Complaint.customer_id == Customer.customer_id, Complaint.open)
    .correlate(Customer)
    .scalar_subquery()
)

FIELDS: dict[str, Field] = {
    "region": Field(Customer.region, TEXT),
    "customer_type": Field(Customer.customer_type, TEXT, ("individual", "organization")),
    "status": Field(Customer.status, TEXT),
    "active_lines": Field(Customer.active_lines, INTEGER),
    "value_tier": Field(Customer.value_tier, TEXT, ("high", "mid", "low")),
    "activity_tier": Field(Customer.activity_tier, TEXT),
    "lifecycle_stage": Field(Customer.lifecycle_stage, TEXT),
    "churn_score": Field(Customer.churn_score, DECIMAL),
    "churn_band": Field(Customer.churn_band, TEXT, BANDS),
    "bad_debt_score": Field(Customer.bad_debt_score, DECIMAL),
    "bad_debt_band": Field(Customer.bad_debt_band, TEXT, BANDS),
    "open_complaints": Field(_open_complaints, INTEGER),
}


@dataclass(frozen=True)
class Audience:
    segments: tuple[str, ...]
    rule: Rule | None

    @property
    def empty(self) -> bool:
        return not self.segments and self.rule is None


def parse(audience: Any, path: str = "audience") -> Audience:
    """{"segments": [...], "rule": {...}}, either or both; any mistake is a 422 naming where it is."""
    if audience is None:
        return Audience((), None)
    if not isinstance(audience, dict):
        raise InvalidInput(f"{path}: expected an object with segments and/or rule", field=path)
    unknown = sorted(set(audience) - {"segments", "rule"})
    if unknown:
        raise InvalidInput(f"{path}.{unknown[0]}: unknown key; an audience has segments and rule", field=path)
    segments = audience.get("segments") or []
    if not isinstance(segments, list) or len(segments) > MAX_SEGMENTS:
        raise InvalidInput(f"{path}.segments: a list of at most {MAX_SEGMENTS} segment ids", field=f"{path}.segments")
    for i, segment in enumerate(segments):
        if not isinstance(segment, str) or not 0 < len(segment) <= 64:
            raise InvalidInput(f"{path}.segments[{i}]: a segment id", field=f"{path}.segments[{i}]")
    rule = audience.get("rule")
    parsed = None if rule is None else rules.parse_rule(rule, FIELDS, f"{path}.rule")
    return Audience(tuple(dict.fromkeys(segments)), parsed)


def selects(audience: Audience, now: datetime) -> ColumnElement[bool]:
    """The audience as one WHERE over the campaign's customers."""
    in_segments: ColumnElement[bool] = true()
    if audience.segments:
        in_segments = exists().where(
            SegmentMember.customer_id == Customer.customer_id, SegmentMember.segment_id.in_(audience.segments)
        )
    matches = true() if audience.rule is None else rules.compile_rule(audience.rule, FIELDS, now)
    return and_(Customer.erased_at.is_(None), Customer.merged_into.is_(None), in_segments, matches)


def members(audience: Audience, now: datetime) -> Select[tuple[str]]:
    return select(Customer.customer_id).where(selects(audience, now))


async def holds(session: AsyncSession, audience: Audience, customer_id: str, now: datetime) -> bool:
    found = await session.scalar(members(audience, now).where(Customer.customer_id == customer_id))
    return found is not None


async def count(session: AsyncSession, audience: Audience, now: datetime) -> int:
    return await session.scalar(select(func.count()).select_from(members(audience, now).subquery())) or 0


@dataclass(frozen=True)
class Preview:
    count: int
    treatment: int
    control: int
    sample: list[str]


async def preview(
    session: AsyncSession, holdout_key: str, audience: Audience, holdout: Decimal, now: datetime
) -> Preview:
    """How many customers the audience holds now and how they would split (the split is the launch's own: the
    same customers land in the same groups), with the first few ids."""
    ids = list(await session.scalars(members(audience, now).order_by(Customer.customer_id)))
    treatment, held_out = control.assign(holdout_key, ids, holdout)
    return Preview(len(ids), len(treatment), len(held_out), ids[:SAMPLE_SIZE])
