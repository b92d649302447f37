"""The built-in tiers as pure functions: value by ARPU against the cutoffs, activity by active days, the lifecycle
stage in its order of precedence, and where the percentile cutoffs sit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from crm_customer.domain.metrics import (
    DEFAULT_CUTOFFS,
    MIN_POPULATION,
    Cutoffs,
    LifecycleFacts,
    activity_tier,
    lifecycle_stage,
    percentile_offset,
    tenure_days,
    value_tier,
)

NOW = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("arpu", "tier"),
    [(None, None), (0, "low"), (5_999, "low"), (6_000, "mid"), (14_999, "mid"), (15_000, "high"), (99_900, "high")],
)
def test_value_tier_uses_the_fixed_defaults_until_the_population_has_cutoffs(arpu, tier):
    assert DEFAULT_CUTOFFS.from_population is False
    assert value_tier(arpu, DEFAULT_CUTOFFS) == tier


def test_value_tier_against_population_cutoffs():
    cutoffs = Cutoffs(value_high_min_fen=20_000, value_mid_min_fen=8_000, population=MIN_POPULATION, computed_at=NOW)
    assert cutoffs.from_population
    assert [value_tier(f, cutoffs) for f in (7_999, 8_000, 19_999, 20_000)] == ["low", "mid", "mid", "high"]
    assert not replace(cutoffs, population=MIN_POPULATION - 1).from_population


@pytest.mark.parametrize(
    ("days", "tier"), [(0, "dormant"), (1, "low"), (9, "low"), (10, "mid"), (19, "mid"), (20, "high"), (30, "high")]
)
def test_activity_tier_thresholds(days, tier):
    assert activity_tier(days) == tier


STEADY = LifecycleFacts(
    active_lines=1,
    suspended_lines=0,
    total_lines=1,
    tenure_days=400,
    arpu_fen=10_000,
    prev_arpu_fen=10_000,
    overdue_invoices=0,
    churn_score=Decimal("0.1"),
)


@pytest.mark.parametrize(
    ("changes", "stage"),
    [
        ({}, "stable"),
        ({"arpu_fen": 10_999}, "stable"),
        ({"arpu_fen": 11_000}, "growing"),
        ({"arpu_fen": 9_001}, "stable"),
        ({"arpu_fen": 9_000}, "declining"),
        ({"prev_arpu_fen": None}, "stable"),
        ({"prev_arpu_fen": 0}, "stable"),
        ({"tenure_days": 89, "arpu_fen": 20_000}, "new"),
        ({"tenure_days": 90}, "stable"),
        ({"tenure_days": None, "total_lines": 0, "active_lines": 0}, "new"),
        ({"churn_score": Decimal("0.6")}, "at_risk"),
        ({"churn_score": Decimal("0.5999")}, "stable"),
        ({"overdue_invoices": 2}, "at_risk"),
        ({"overdue_invoices": 1}, "stable"),
        ({"active_lines": 0, "suspended_lines": 1}, "at_risk"),
        ({"active_lines": 1, "suspended_lines": 1, "total_lines": 2}, "stable"),
        ({"tenure_days": 10, "overdue_invoices": 3}, "at_risk"),
        ({"active_lines": 0, "total_lines": 2, "churn_score": Decimal("0.9")}, "churned"),
    ],
)
def test_lifecycle_stage_first_rule_that_holds_wins(changes, stage):
    assert lifecycle_stage(replace(STEADY, **changes)) == stage


def test_tenure_counts_whole_days_since_the_first_activation():
    assert tenure_days(None, NOW) is None
    assert tenure_days(NOW - timedelta(days=90, hours=23), NOW) == 90
    assert tenure_days(NOW + timedelta(hours=1), NOW) == 0


@pytest.mark.parametrize(
    ("population", "percentile", "offset"),
    [(1, 80, 0), (5, 80, 4), (5, 40, 2), (100, 80, 80), (1_000_000, 40, 400_000)],
)
def test_percentile_offset_leaves_that_share_of_the_population_below(population, percentile, offset):
    assert percentile_offset(population, percentile) == offset
