"""The customer's facts (客户画像指标) and the built-in tiers derived from them: value (价值), activity (活跃度) and
lifecycle (生命周期). One flat CustomerMetrics row per customer, kept in step as billing events arrive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain import billing, lines
from crm_customer.models import (
    CustomerMetrics,
    Subscription,
    TierCutoff,
    UsageDay,
)
from crm_kit.db import insert_ignoring_duplicates
from crm_kit.sqljson import document, from_rows, loads, rows_json, utc_datetime

VALUE = "value"
ACTIVITY = "activity"
LIFECYCLE = "lifecycle"
DIMENSIONS = (VALUE, ACTIVITY, LIFECYCLE)

VALUE_TIERS = ("high", "mid", "low")
ACTIVITY_TIERS = ("high", "mid", "low", "dormant")
LIFECYCLE_STAGES = ("new", "growing", "stable", "declining", "at_risk", "churned")
TIERS = {VALUE: VALUE_TIERS, ACTIVITY: ACTIVITY_TIERS, LIFECYCLE: LIFECYCLE_STAGES}
TIER_COLUMNS = {
    VALUE: CustomerMetrics.value_tier,
    ACTIVITY: CustomerMetrics.activity_tier,
    LIFECYCLE: CustomerMetrics.lifecycle_stage,
}

VALUE_HIGH_MIN = "value_high_min_fen"
VALUE_MID_MIN = "value_mid_min_fen"
VALUE_HIGH_PERCENTILE = 80
VALUE_MID_PERCENTILE = 40
DEFAULT_VALUE_HIGH_MIN_FEN = 15_000
"""Until the population has cutoffs: high value from an ARPU of 150 yuan a month."""
DEFAULT_VALUE_MID_MIN_FEN = 6_000
"""... and mid value from 60 yuan."""
MIN_POPULATION = 100
"""Percentiles of fewer customers with an ARPU say little: below this the fixed defaults stay in force."""
CUTOFF_NAMES = (VALUE_HIGH_MIN, VALUE_MID_MIN)
CUTOFF_MAX_AGE = timedelta(days=1)

ACTIVITY_HIGH_MIN_DAYS = 20
"""Active (any voice, SMS or data) on 20 or more of the last 30 days: high activity."""
ACTIVITY_MID_MIN_DAYS = 10
"""10-19 days: mid; 1-9 days: low; none: dormant (沉默用户)."""

NEW_TENURE_DAYS = 90
"""In network (在网) for less than 90 days: a new customer."""
AT_RISK_CHURN_SCORE = Decimal("0.6")
AT_RISK_OVERDUE_INVOICES = 2
TREND_PERCENT = 10
"""ARPU up (down) by 10 % or more against the three months before: growing (declining)."""


@dataclass(frozen=True)
class TierChange:
    dimension: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Cutoffs:
    value_high_min_fen: int
    value_mid_min_fen: int
    population: int
    computed_at: datetime | None

    @property
    def from_population(self) -> bool:
        """False: the fixed defaults apply (no cutoffs yet, or too few customers with an ARPU)."""
        return self.computed_at is not None and self.population >= MIN_POPULATION


DEFAULT_CUTOFFS = Cutoffs(DEFAULT_VALUE_HIGH_MIN_FEN, DEFAULT_VALUE_MID_MIN_FEN, 0, None)


def value_tier(arpu_fen: int | None, cutoffs: Cutoffs) -> str | None:
    """high / mid / low by ARPU against the cutoffs; None (not tiered) before the customer's first bill."""
    if arpu_fen is None:
        return None
    if arpu_fen >= cutoffs.value_high_min_fen:
        return "high"
    if arpu_fen >= cutoffs.value_mid_min_fen:
        return "mid"
    return "low"


def activity_tier(days_active_30d: int) -> str:
    """By days with any use in the last 30: ≥ 20 high, 10-19 mid, 1-9 low, 0 dormant."""
    if days_active_30d >= ACTIVITY_HIGH_MIN_DAYS:
        return "high"
    if days_active_30d >= ACTIVITY_MID_MIN_DAYS:
        return "mid"
    if days_active_30d >= 1:
        return "low"
    return "dormant"


@dataclass(frozen=True)
class LifecycleFacts:
    active_lines: int
    suspended_lines: int
    total_lines: int
    tenure_days: int | None
    """Days since the first activation; None before any."""
    arpu_fen: int | None
    prev_arpu_fen: int | None
    overdue_invoices: int
    churn_score: Decimal | None


def lifecycle_stage(facts: LifecycleFacts) -> str:
    """The first that holds, in this order:

    - churned (已离网): had lines, none active or suspended any more;
    - at_risk (高危): churn score ≥ 0.6, or two or more bills overdue, or every open line suspended (停机);
    - new (新入网): less than 90 days since the first activation (or not activated yet);
    - growing / declining: ARPU up / down by 10 % or more against the three months before;
    - stable otherwise.
    """
    open_lines = facts.active_lines + facts.suspended_lines
    if facts.total_lines > 0 and open_lines == 0:
        return "churned"
    if (
        (facts.churn_score is not None and facts.churn_score >= AT_RISK_CHURN_SCORE)
        or facts.overdue_invoices >= AT_RISK_OVERDUE_INVOICES
        or (facts.suspended_lines > 0 and facts.active_lines == 0)
    ):
        return "at_risk"
    if facts.tenure_days is None or facts.tenure_days < NEW_TENURE_DAYS:
        return "new"
    if facts.arpu_fen is not None and facts.prev_arpu_fen:
        if facts.arpu_fen * 100 >= facts.prev_arpu_fen * (100 + TREND_PERCENT):
            return "growing"
        if facts.arpu_fen * 100 <= facts.prev_arpu_fen * (100 - TREND_PERCENT):
            return "declining"
    return "stable"


def percentile_offset(population: int, percentile: int) -> int:
    """The row (0-based, ascending) whose value is the `percentile`-th percentile: that share of the population
    lies below it."""
    return min(population - 1, population * percentile // 100)


# --- cutoffs -------------------------------------------------------------------------------------------------------


async def load_cutoffs(session: AsyncSession) -> Cutoffs:
    return cutoffs_from(list(await session.scalars(select(TierCutoff))))


def cutoffs_from(rows: Sequence[TierCutoff]) -> Cutoffs:
    """The cutoffs in force: the population's when there are enough customers with an ARPU, else the defaults."""
    stored = {c.name: c for c in rows}
    high, mid = stored.get(VALUE_HIGH_MIN), stored.get(VALUE_MID_MIN)
    if high is None or mid is None:
        return DEFAULT_CUTOFFS
    found = Cutoffs(high.value, mid.value, high.population, high.computed_at)
    if not found.from_population:
        return Cutoffs(DEFAULT_VALUE_HIGH_MIN_FEN, DEFAULT_VALUE_MID_MIN_FEN, found.population, found.computed_at)
    return found


async def _nth_arpu(session: AsyncSession, offset: int) -> int:
    """The ARPU at `offset` in ascending order: a walk along the arpu_fen index, nothing loaded into Python."""
    value = await session.scalar(
        select(CustomerMetrics.arpu_fen)
        .where(CustomerMetrics.arpu_fen.is_not(None))
        .order_by(CustomerMetrics.arpu_fen)
        .offset(offset)
        .limit(1)
    )
    return int(value or 0)


async def recompute_cutoffs(session: AsyncSession, now: datetime) -> Cutoffs:
    """The ARPU at the 80th (high) and 40th (mid) percentiles over the customers with an ARPU, stored."""
    population = await session.scalar(select(func.count()).where(CustomerMetrics.arpu_fen.is_not(None))) or 0
    high = await _nth_arpu(session, percentile_offset(population, VALUE_HIGH_PERCENTILE)) if population else 0
    mid = await _nth_arpu(session, percentile_offset(population, VALUE_MID_PERCENTILE)) if population else 0
    dialect = session.get_bind().dialect.name
    for name, value in ((VALUE_HIGH_MIN, high), (VALUE_MID_MIN, mid)):
        await session.execute(
            insert_ignoring_duplicates(dialect, TierCutoff).values(
                name=name, value=value, population=population, computed_at=now
            )
        )
        await session.execute(
            update(TierCutoff)
            .where(TierCutoff.name == name)
            .values(value=value, population=population, computed_at=now)
        )
    return await load_cutoffs(session)


async def current_cutoffs(session: AsyncSession, now: datetime, stored: Sequence[TierCutoff] | None = None) -> Cutoffs:
    """The cutoffs in force, recomputed first when there are none yet or they are older than a day (`stored`:
    the rows, when the caller has read them already)."""
    if stored is None:
        stored = list(await session.scalars(select(TierCutoff)))
    if len(stored) < len(CUTOFF_NAMES) or now - min(c.computed_at for c in stored) > CUTOFF_MAX_AGE:
        return await recompute_cutoffs(session, now)
    return cutoffs_from(stored)


# --- one customer --------------------------------------------------------------------------------------------------


@cache
def facts_query() -> Select[tuple[str]]:
    """Everything `refresh` reads about one customer, in one statement: bills and payments, lines by status,
    30-day usage, the last active day and the cutoffs in force (ten round trips one by one, and refresh runs
    for nearly every event the service consumes). Built once, like the 360 view's."""
    customer_id = bindparam("customer_id", type_=String)
    used = (UsageDay.voice_minutes > 0) | (UsageDay.sms_count > 0) | (UsageDay.data_mb > 0)
    return document(
        **billing.billing_parts(customer_id),
        lines=rows_json(
            select(
                Subscription.status,
                func.count().label("lines"),
                func.min(Subscription.activated_at).label("first_activated_at"),
            )
            .where(Subscription.customer_id == customer_id)
            .group_by(Subscription.status)
        ),
        last_active_on=select(func.max(UsageDay.usage_date))
        .where(UsageDay.customer_id == customer_id, used)
        .scalar_subquery(),
        cutoffs=rows_json(select(TierCutoff)),
    )


@dataclass
class Facts:
    """What `facts_query` found, read back into the shapes the rules take."""

    billing: billing.BillingSummary
    lines: lines.LineCounts
    first_activated_at: datetime | None
    usage: billing.Activity
    last_active_on: date | None
    cutoffs: list[TierCutoff]


async def read_facts(session: AsyncSession, customer_id: str, today: date) -> Facts:
    """In the caller's transaction, so the event being applied is part of what is read."""
    first_day, last_day = billing.activity_window(today)
    found = loads(
        await session.scalar(facts_query(), {"customer_id": customer_id, "first_day": first_day, "last_day": last_day})
    )
    by_status = {row["status"]: row["lines"] for row in found["lines"]}
    first_times = [utc_datetime(row["first_activated_at"]) for row in found["lines"] if row["first_activated_at"]]
    return Facts(
        billing=billing.billing_from(found),
        lines=lines.LineCounts(
            active=by_status.get("active", 0), suspended=by_status.get("suspended", 0), total=sum(by_status.values())
        ),
        first_activated_at=min(first_times, default=None),
        usage=billing.activity(found["usage"][0], today),
        last_active_on=date.fromisoformat(found["last_active_on"]) if found["last_active_on"] else None,
        cutoffs=from_rows(TierCutoff, found["cutoffs"]),
    )


def tenure_days(first_activated_at: datetime | None, now: datetime) -> int | None:
    return None if first_activated_at is None else max((now - first_activated_at).days, 0)


BILLING_FACTS = "billing"
LINE_FACTS = "lines"
USAGE_FACTS = "usage"
ALL_FACTS = frozenset({BILLING_FACTS, LINE_FACTS, USAGE_FACTS})
"""What an event can change: bills and payments (ARPU, arrears), lines (counts, tenure), usage (30-day activity).
A usage summary — the most frequent event by far — recomputes only the usage facts."""


async def refresh(
    session: AsyncSession, customer_id: str, now: datetime, facts: frozenset[str] = ALL_FACTS
) -> list[TierChange]:
    """Recompute the customer's `facts` from the service's own projections, then the three built-in tiers.

    Facts not named keep their stored values; tickets, CSAT and the risk scores are kept as they are (their own
    events maintain them). Returns the tiers that changed."""
    await session.flush()  # the event's own changes, so the reads below see them
    row = await session.get(CustomerMetrics, customer_id)
    if row is None:
        facts = ALL_FACTS
    with session.no_autoflush:  # read everything first, then write the row once
        found = await read_facts(session, customer_id, billing.shanghai_today(now))
        cutoffs = await current_cutoffs(session, now, found.cutoffs)
    summary, counts, usage = found.billing, found.lines, found.usage
    previous = summary.trend[: -billing.ARPU_MONTHS]
    if row is None:
        row = CustomerMetrics(customer_id=customer_id, open_tickets=0, updated_at=now)
        session.add(row)
    if BILLING_FACTS in facts:
        row.arpu_fen = summary.arpu_fen
        row.prev_arpu_fen = billing.arpu([m.amount_due_fen for m in previous[-billing.ARPU_MONTHS :]])
        row.outstanding_fen = summary.outstanding_fen
        row.overdue_invoices = summary.overdue_invoices
    if LINE_FACTS in facts:
        row.active_lines = counts.active
        row.total_lines = counts.total
        row.first_activated_at = found.first_activated_at
    if USAGE_FACTS in facts:
        row.voice_minutes_30d = usage.voice_minutes
        row.sms_30d = usage.sms_count
        row.data_mb_30d = usage.data_mb
        row.days_active_30d = usage.days_active
        row.last_active_on = found.last_active_on
    row.updated_at = now

    tiers = {
        VALUE: value_tier(row.arpu_fen, cutoffs),
        ACTIVITY: activity_tier(row.days_active_30d),
        LIFECYCLE: lifecycle_stage(
            LifecycleFacts(
                active_lines=counts.active,
                suspended_lines=counts.suspended,
                total_lines=counts.total,
                tenure_days=tenure_days(row.first_activated_at, now),
                arpu_fen=row.arpu_fen,
                prev_arpu_fen=row.prev_arpu_fen,
                overdue_invoices=row.overdue_invoices,
                churn_score=row.churn_score,
            )
        ),
    }
    old = {VALUE: row.value_tier, ACTIVITY: row.activity_tier, LIFECYCLE: row.lifecycle_stage}
    row.value_tier, row.activity_tier, row.lifecycle_stage = tiers[VALUE], tiers[ACTIVITY], tiers[LIFECYCLE]
    await session.flush()
    return [TierChange(d, old[d], tiers[d]) for d in DIMENSIONS if old[d] != tiers[d]]


# --- everyone at once ----------------------------------------------------------------------------------------------


def value_tier_sql(cutoffs: Cutoffs) -> ColumnElement[str | None]:
    """`value_tier` as SQL, the same rule as the function, for re-tiering every customer in one statement."""
    arpu = CustomerMetrics.arpu_fen
    return case(
        (arpu.is_(None), literal(None)),
        (arpu >= cutoffs.value_high_min_fen, literal("high")),
        (arpu >= cutoffs.value_mid_min_fen, literal("mid")),
        else_=literal("low"),
    )


@dataclass
class Retiering:
    cutoffs: Cutoffs
    changes: list[tuple[str, TierChange]]
    """(customer id, change) of the customers re-tiered by this call."""
    remaining: int
    """Customers still on a stale value tier (more than one call's cap): call again."""


RETIER_CHUNK = 1_000


async def recompute_all(session: AsyncSession, now: datetime, *, cap: int = 100_000) -> Retiering:
    """New cutoffs, then every customer's value tier against them, set-based: the customers whose tier changes
    are found by one query on the tier expression and updated by id in chunks of one UPDATE each. At most `cap`
    customers per call (each change is an event to publish); `remaining` says how many are left for the next call.
    Activity and lifecycle do not depend on the population: they move with each customer's own events."""
    cutoffs = await recompute_cutoffs(session, now)
    new_tier = value_tier_sql(cutoffs)
    stale = func.coalesce(CustomerMetrics.value_tier, "") != func.coalesce(new_tier, "")
    found = (
        await session.execute(
            select(CustomerMetrics.customer_id, CustomerMetrics.value_tier, new_tier.label("new"))
            .where(stale)
            .order_by(CustomerMetrics.customer_id)
            .limit(cap)
        )
    ).all()
    for chunk in _chunks([row.customer_id for row in found], RETIER_CHUNK):
        await session.execute(
            update(CustomerMetrics)
            .where(and_(CustomerMetrics.customer_id.in_(chunk), stale))
            .values(value_tier=new_tier, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    remaining = 0
    if len(found) == cap:
        remaining = await session.scalar(select(func.count()).where(stale)) or 0
    return Retiering(
        cutoffs, [(row.customer_id, TierChange(VALUE, row.value_tier, row.new)) for row in found], remaining
    )


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
