"""Campaign evaluation (活动效果评估): uplift checked against numbers worked out by hand, simulated experiments with a
known truth, the degenerate groups a real campaign produces, and the money in exact fen and Decimal."""

from __future__ import annotations

import math
from decimal import Decimal
from statistics import NormalDist

import numpy as np
import pytest

from crm_campaign.domain.evaluation import (
    Proportions,
    evaluate,
    incremental_revenue_fen,
    retention,
    roi,
    uplift,
)

EXAMPLE = Proportions(treated_n=10_000, treated_successes=1200, control_n=1000, control_successes=100)


def pooled_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Two-proportion z-test with the pooled rate and the Miettinen-Nurminen n/(n-1) factor; two-sided p via erf."""
    pooled = (x1 + x2) / (n1 + n2)
    n = n1 + n2
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2) * n / (n - 1))
    z = (x1 / n1 - x2 / n2) / se
    return z, 1 - math.erf(abs(z) / math.sqrt(2))


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def newcomb(x1: int, n1: int, x2: int, n2: int, confidence: float) -> tuple[float, float]:
    """Newcomb's hybrid score interval for p1 − p2, built from the two Wilson intervals."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1, z), wilson(x2, n2, z)
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def simulated(rng: np.random.Generator, treated: tuple[int, float], control: tuple[int, float]) -> Proportions:
    return Proportions(
        treated_n=treated[0],
        treated_successes=int((rng.random(treated[0]) < treated[1]).sum()),
        control_n=control[0],
        control_successes=int((rng.random(control[0]) < control[1]).sum()),
    )


def test_a_known_example_matches_the_hand_computation() -> None:
    result = uplift(EXAMPLE)
    z, p_value = pooled_z_test(1200, 10_000, 100, 1000)
    low, high = newcomb(1200, 10_000, 100, 1000, 0.95)
    assert result.treatment_rate == pytest.approx(0.12)
    assert result.control_rate == pytest.approx(0.10)
    assert result.uplift == pytest.approx(0.02)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.p_value == pytest.approx(0.0618, abs=1e-4)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert result.ci_low < 0.02 < result.ci_high
    assert result.confidence == 0.95
    assert not result.significant, "p ≈ 0.062 is above 0.05"


def test_a_lower_confidence_narrows_the_interval_and_lowers_the_bar() -> None:
    result = uplift(EXAMPLE, confidence=0.90)
    low, high = newcomb(1200, 10_000, 100, 1000, 0.90)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert 0 < result.ci_low < 0.02 < result.ci_high
    assert result.significant, "p ≈ 0.062 is below 0.10"


def test_a_large_simulated_campaign_finds_the_true_uplift() -> None:
    """True rates 0.15 vs 0.10: an uplift of 0.05, about seven standard errors at these sizes."""
    result = uplift(simulated(np.random.default_rng(20240601), (20_000, 0.15), (2000, 0.10)))
    assert result.ci_low < 0.05 < result.ci_high
    assert result.ci_low > 0
    assert result.significant
    assert result.p_value is not None and result.p_value < 1e-6


def test_an_a_a_test_is_not_significant() -> None:
    """Both groups drawn at 0.12: whatever difference shows is noise."""
    result = uplift(simulated(np.random.default_rng(7), (20_000, 0.12), (2000, 0.12)))
    assert result.p_value is not None and result.p_value > 0.05
    assert not result.significant
    assert result.ci_low < 0 < result.ci_high


@pytest.mark.parametrize(
    "counts",
    [
        Proportions(treated_n=1000, treated_successes=0, control_n=100, control_successes=0),
        Proportions(treated_n=1000, treated_successes=1000, control_n=100, control_successes=100),
        Proportions(treated_n=1, treated_successes=0, control_n=1, control_successes=0),
    ],
    ids=["all-zero", "all-one", "one-each"],
)
def test_groups_without_variance_give_no_test_and_no_nan(counts: Proportions) -> None:
    result = uplift(counts)
    assert result.uplift == 0
    assert result.z is None
    assert result.p_value is None
    assert not result.significant
    assert math.isfinite(result.ci_low) and math.isfinite(result.ci_high)
    assert -1 <= result.ci_low < 0 < result.ci_high <= 1


def test_one_rate_zero_and_the_other_one_is_still_tested() -> None:
    """The pooled test has variance here; the Wald test would divide by zero."""
    result = uplift(Proportions(treated_n=100, treated_successes=0, control_n=50, control_successes=50))
    assert result.uplift == -1
    assert result.z is not None and math.isfinite(result.z) and result.z < 0
    assert result.significant
    assert result.ci_low == pytest.approx(-1) and result.ci_high < 0


@pytest.mark.parametrize(
    ("counts", "group"),
    [
        (Proportions(treated_n=0, treated_successes=0, control_n=100, control_successes=5), "treated"),
        (Proportions(treated_n=100, treated_successes=5, control_n=0, control_successes=0), "control"),
    ],
)
def test_an_empty_group_is_refused_by_name(counts: Proportions, group: str) -> None:
    with pytest.raises(ValueError, match=f"{group} group is empty"):
        uplift(counts)


@pytest.mark.parametrize(
    ("treated_n", "treated_successes", "control_n", "control_successes", "group"),
    [(10, 11, 10, 1, "treated"), (10, 1, 10, -1, "control"), (-1, 0, 10, 1, "treated")],
)
def test_impossible_counts_are_refused(
    treated_n: int, treated_successes: int, control_n: int, control_successes: int, group: str
) -> None:
    with pytest.raises(ValueError, match=f"{group} group"):
        Proportions(treated_n, treated_successes, control_n, control_successes)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95.0])
def test_a_confidence_outside_zero_to_one_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        uplift(EXAMPLE, confidence=confidence)


def test_retention_reads_a_fall_in_churn_as_a_negative_uplift() -> None:
    """Retention offer: 3% of treated customers churned against 6% of the control group."""
    result = retention(Proportions(treated_n=20_000, treated_successes=600, control_n=2000, control_successes=120))
    assert result.uplift == pytest.approx(-0.03)
    assert result.ci_high < 0
    assert result.significant


def test_incremental_revenue_per_customer_scaled_to_the_treated_group() -> None:
    """500 fen per treated customer against 450 per control customer, over 10,000 treated: 500,000 fen."""
    assert incremental_revenue_fen(10_000, 5_000_000, 1000, 450_000) == 500_000
    assert incremental_revenue_fen(10_000, 4_000_000, 1000, 450_000) == -500_000


def test_incremental_revenue_rounds_half_up_to_whole_fen() -> None:
    """10/3 − 1/2 per customer, × 3 customers = 8.5 fen; ties go away from zero, not to even."""
    assert incremental_revenue_fen(3, 10, 2, 1) == 9
    assert incremental_revenue_fen(3, 0, 2, 1) == -2
    assert incremental_revenue_fen(3, 10, 3, 1) == 9
    assert incremental_revenue_fen(7, 100, 3, 10) == 77


@pytest.mark.parametrize(("treated_n", "control_n", "group"), [(0, 10, "treated"), (10, 0, "control")])
def test_incremental_revenue_needs_both_groups(treated_n: int, control_n: int, group: str) -> None:
    with pytest.raises(ValueError, match=f"{group} group is empty"):
        incremental_revenue_fen(treated_n, 0, control_n, 0)


def test_roi_is_exact_to_four_places_half_up() -> None:
    assert str(roi(500_000, 200_000)) == "1.5000"
    assert roi(33, 32) == Decimal("0.0313"), "1/32 = 0.03125 rounds up, not to even"
    assert roi(1, 3) == Decimal("-0.6667")
    assert roi(0, 100) == Decimal(-1)


def test_roi_of_a_free_campaign_is_none() -> None:
    assert roi(500_000, 0) is None


def test_a_negative_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="cost"):
        roi(500_000, -1)


def test_evaluate_bundles_uplift_revenue_and_roi() -> None:
    result = evaluate(EXAMPLE, treated_revenue_fen=5_000_000, control_revenue_fen=450_000, cost_fen=200_000)
    assert result.response.uplift == pytest.approx(0.02)
    assert result.response.p_value == pytest.approx(0.0618, abs=1e-4)
    assert result.incremental_revenue_fen == 500_000
    assert result.cost_fen == 200_000
    assert result.roi == Decimal("1.5000")
    assert evaluate(EXAMPLE, 5_000_000, 450_000, cost_fen=0).roi is None
