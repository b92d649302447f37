"""Segments (客户分群): rules over the customer's fields, their compilation to one SQL WHERE, and membership.

A rule is the kit's rule language (`crm_kit.rules`) over a whitelist of profile fields and the customer's facts
(CustomerMetrics): `{"all": [{"field": "region", "op": "eq", "value": "BJ"}, ..]}`. It compiles to one WHERE over
customer LEFT JOIN customer_metrics, so counting or listing a segment of a million customers is one scan. Merged
and erased customers are never members.

Rule segments are evaluated when created, when their rule changes and on `evaluate` (by hand or a periodic
job); the built-in tiers (value, activity, lifecycle) move with each customer's billing events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain import metrics
from crm_customer.models import Customer, CustomerMetrics, Segment, SegmentMember
from crm_kit import rules
from crm_kit.db import Database
from crm_kit.errors import Conflict, NotFound
from crm_kit.periodic import repeat
from crm_kit.rules import BOOLEAN, DATETIME, DECIMAL, INTEGER, TEXT, Field, Rule, days_since

SAMPLE_SIZE = 20


def _zero(column: Any) -> ColumnElement[Any]:
    """A fact counted from zero: a customer without a metrics row yet has none of it."""
    return func.coalesce(column, 0)


M = CustomerMetrics
FIELDS: dict[str, Field] = {
    "region": Field(Customer.region, TEXT),
    "customer_type": Field(Customer.customer_type, TEXT),
    "status": Field(Customer.status, TEXT),
    "key_account": Field(Customer.key_account, BOOLEAN),
    "key_account_tier": Field(Customer.key_account_tier, TEXT),
    "account_manager": Field(Customer.account_manager, TEXT),
    "created_at": Field(Customer.created_at, DATETIME),
    "source": Field(Customer.source, TEXT),
    "arpu_fen": Field(M.arpu_fen, INTEGER),
    "prev_arpu_fen": Field(M.prev_arpu_fen, INTEGER),
    "outstanding_fen": Field(_zero(M.outstanding_fen), INTEGER),
    "overdue_invoices": Field(_zero(M.overdue_invoices), INTEGER),
    "active_lines": Field(_zero(M.active_lines), INTEGER),
    "total_lines": Field(_zero(M.total_lines), INTEGER),
    "voice_minutes_30d": Field(_zero(M.voice_minutes_30d), INTEGER),
    "sms_30d": Field(_zero(M.sms_30d), INTEGER),
    "data_mb_30d": Field(_zero(M.data_mb_30d), INTEGER),
    "days_active_30d": Field(_zero(M.days_active_30d), INTEGER),
    "open_tickets": Field(_zero(M.open_tickets), INTEGER),
    "last_csat": Field(M.last_csat, INTEGER),
    "churn_score": Field(M.churn_score, DECIMAL),
    "bad_debt_score": Field(M.bad_debt_score, DECIMAL),
    "value_tier": Field(M.value_tier, TEXT, metrics.VALUE_TIERS),
    "activity_tier": Field(M.activity_tier, TEXT, metrics.ACTIVITY_TIERS),
    "lifecycle_stage": Field(M.lifecycle_stage, TEXT, metrics.LIFECYCLE_STAGES),
    "tenure_days": Field(M.first_activated_at, INTEGER, compiled=days_since(M.first_activated_at)),
}


def parse_rule(rule: Any, path: str = "rule") -> Rule:
    """The rule checked against the customer's fields; any mistake is a 422 naming where in the rule it is."""
    return rules.parse_rule(rule, FIELDS, path)


def compile_rule(rule: Rule, now: datetime) -> ColumnElement[bool]:
    """The rule as one WHERE over customer LEFT JOIN customer_metrics."""
    return rules.compile_rule(rule, FIELDS, now)


def eligible() -> ColumnElement[bool]:
    """Merged and erased customers belong to no segment."""
    return and_(Customer.merged_into.is_(None), Customer.erased_at.is_(None))


def population(where: ColumnElement[bool]) -> Select[tuple[str]]:
    """Ids of the customers matching `where`, over customer LEFT JOIN customer_metrics."""
    return (
        select(Customer.id)
        .select_from(Customer)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(eligible(), where)
    )


def matching(rule: Any, now: datetime) -> ColumnElement[bool]:
    return compile_rule(parse_rule(rule), now)


@dataclass
class Preview:
    count: int
    sample: list[tuple[str, str | None]]


async def preview(session: AsyncSession, rule: Any, now: datetime) -> Preview:
    """How many customers the rule selects now, and the first few (by id)."""
    where = matching(rule, now)
    ids = population(where).subquery()
    count = await session.scalar(select(func.count()).select_from(ids)) or 0
    rows = await session.execute(
        select(Customer.id, Customer.name)
        .where(Customer.id.in_(population(where).order_by(Customer.id).limit(SAMPLE_SIZE).scalar_subquery()))
        .order_by(Customer.id)
    )
    return Preview(count, [(r.id, r.name) for r in rows])


def mask_name(name: str | None) -> str | None:
    """张伟 → 张*, Acme Ltd → A*******: enough to recognise a sample, not to identify a person."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1)


# --- built-in tier segments ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builtin:
    id: str
    dimension: str
    tier: str

    @property
    def rule(self) -> dict[str, Any]:
        column = {metrics.VALUE: "value_tier", metrics.ACTIVITY: "activity_tier", metrics.LIFECYCLE: "lifecycle_stage"}
        return {"field": column[self.dimension], "op": "eq", "value": self.tier}

    @property
    def name(self) -> str:
        return f"{self.dimension} {self.tier}"


BUILTINS = {
    f"{dimension}-{tier}": Builtin(f"{dimension}-{tier}", dimension, tier)
    for dimension, tiers in metrics.TIERS.items()
    for tier in tiers
}


async def builtin_counts(session: AsyncSession) -> dict[str, int]:
    """Customers per built-in tier: one scan grouped by the three tier columns together (at most 72 groups)."""
    counts = dict.fromkeys(BUILTINS, 0)
    columns = list(metrics.TIER_COLUMNS.values())
    rows = await session.execute(
        select(*columns, func.count())
        .select_from(Customer)
        .join(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(eligible())
        .group_by(*columns)
    )
    for *tiers, count in rows:
        for dimension, tier in zip(metrics.TIER_COLUMNS, tiers, strict=True):
            if tier is not None:
                counts[f"{dimension}-{tier}"] += count
    return counts


SEGMENT_CUSTOMERS = Gauge(
    "crm_customer_segment_customers",
    "Customers in each built-in tier: value (价值分层), activity (活跃度), lifecycle (生命周期)",
    ["dimension", "tier"],
)


async def refresh_gauges(db: Database) -> None:
    """Every replica sets the same base-wide counts: dashboards take max() across replicas."""
    async with db.sessions() as session:
        counts = await builtin_counts(session)
    for builtin_id, count in counts.items():
        builtin = BUILTINS[builtin_id]
        SEGMENT_CUSTOMERS.labels(builtin.dimension, builtin.tier).set(count)


async def run_gauges(db: Database, every: float) -> None:
    """Refresh the tier gauges every `every` seconds until cancelled, the first time at once."""
    await repeat(lambda: refresh_gauges(db), every, what="refreshing the segment gauges")


# --- rule segments -------------------------------------------------------------------------------------------------


def new_segment_id() -> str:
    return f"SEG-{uuid.uuid4().hex[:12].upper()}"


async def get_segment(session: AsyncSession, segment_id: str, *, for_update: bool = False) -> Segment:
    query = select(Segment).where(Segment.id == segment_id)
    segment = await session.scalar(query.with_for_update() if for_update else query)
    if segment is None:
        raise NotFound(f"No segment {segment_id}", field="segment_id")
    return segment


async def check_name_free(session: AsyncSession, name: str, segment_id: str | None = None) -> None:
    taken = await session.scalar(select(Segment.id).where(Segment.name == name))
    if name in {b.name for b in BUILTINS.values()} or (taken is not None and taken != segment_id):
        raise Conflict(f"A segment named {name!r} exists already", field="name")


@dataclass
class Diff:
    joined: list[str]
    left: list[str]


EVALUATION_TIMEOUT_SECONDS = 120
"""On PostgreSQL an evaluation's statements may run this long instead of the service's query timeout: writing
300k member rows (each checked against its customer and segment by the foreign keys) takes several seconds on
its own. Bounded, and for the evaluating transaction only."""


async def allow_long_evaluation(session: AsyncSession) -> None:
    """Raise the statement timeout to EVALUATION_TIMEOUT_SECONDS until this transaction ends (PostgreSQL;
    SQLite has no statement timeout)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SET LOCAL statement_timeout = {EVALUATION_TIMEOUT_SECONDS * 1000}"))


async def evaluate(session: AsyncSession, segment: Segment, now: datetime) -> Diff:
    """Bring the members in line with the rule with two set-based statements that each say whom they changed:
    DELETE … WHERE NOT EXISTS (still matching) RETURNING who left, then INSERT … SELECT (matching, not yet a
    member) RETURNING who joined. The rule runs once per statement and nothing but the changed ids comes back
    to Python, so a segment of 300k members over a million customers is evaluated within the request. Both
    lists are sorted by customer id, for the membership events."""
    where = matching(segment.rule, now) if segment.status == "active" else literal(False)
    members = SegmentMember.__table__
    await allow_long_evaluation(session)
    still_matching = population(where).where(Customer.id == members.c.customer_id).exists()
    left = await session.scalars(
        delete(members).where(members.c.segment_id == segment.id, ~still_matching).returning(members.c.customer_id)
    )
    left_ids = sorted(left)
    is_member = exists().where(members.c.segment_id == segment.id, members.c.customer_id == Customer.id)
    joined = await session.scalars(
        insert(members)
        .from_select(
            ["segment_id", "customer_id", "since"],
            population(where)
            .where(~is_member)
            .with_only_columns(literal(segment.id), Customer.id, literal(now, M.updated_at.type)),
        )
        .returning(members.c.customer_id)
    )
    joined_ids = sorted(joined)
    segment.member_count = (
        await session.scalar(select(func.count()).select_from(members).where(members.c.segment_id == segment.id)) or 0
    )
    segment.evaluated_at = now
    segment.updated_at = now
    await session.flush()
    return Diff(joined_ids, left_ids)


async def list_segments(session: AsyncSession, status: str | None) -> Sequence[Segment]:
    query = select(Segment).where(Segment.kind == "rule").order_by(Segment.created_at, Segment.id)
    if status:
        query = query.where(Segment.status == status)
    return list(await session.scalars(query))


@dataclass
class Member:
    customer_id: str
    name: str | None
    since: datetime | None


async def members(
    session: AsyncSession, segment_id: str, visible: ColumnElement[bool], offset: int, limit: int, now: datetime
) -> tuple[int, list[Member]]:
    """(total, page) of a segment's members the caller may see, by customer id. A built-in tier reads its
    indexed column; a rule segment its member rows as last evaluated."""
    builtin = BUILTINS.get(segment_id)
    if builtin is not None:
        ids = population(and_(matching(builtin.rule, now), visible))
        total = await session.scalar(select(func.count()).select_from(ids.subquery())) or 0
        rows = await session.execute(
            ids.with_only_columns(Customer.id, Customer.name).order_by(Customer.id).offset(offset).limit(limit)
        )
        return total, [Member(r.id, r.name, None) for r in rows]
    await get_segment(session, segment_id)
    query = (
        select(Customer.id, Customer.name, SegmentMember.since)
        .join(Customer, Customer.id == SegmentMember.customer_id)
        .where(SegmentMember.segment_id == segment_id, visible)
    )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.execute(query.order_by(Customer.id).offset(offset).limit(limit))
    return total, [Member(r.id, r.name, r.since) for r in rows]
