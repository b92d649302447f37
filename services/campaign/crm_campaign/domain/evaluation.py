"""Campaign evaluation (活动效果评估): how much the treated group beat the control group (对照组), whether that is more
than chance, and what it earned against what it cost.

Rates and test statistics are floats (they are not money); revenue and cost are integer fen (分), ROI a Decimal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

ROI_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Proportions:
    """Customers and successes (responders, buyers, churners…) in the treated and the control group."""

    treated_n: int
    treated_successes: int
    control_n: int
    control_successes: int

    def __post_init__(self) -> None:
        for group, n, successes in (
            ("treated", self.treated_n, self.treated_successes),
            ("control", self.control_n, self.control_successes),
        ):
            if n < 0 or not 0 <= successes <= n:
                raise ValueError(f"{group} group: need 0 <= successes <= n, got {successes} of {n}")


@dataclass(frozen=True)
class Uplift:
    """Treatment minus control in rate points, with its confidence interval and a two-sided test of no difference.

    z and p_value are None when neither group varies (all 0 or all 1): there is no test to run, not a p of 1."""

    treatment_rate: float
    control_rate: float
    uplift: float
    ci_low: float
    ci_high: float
    confidence: float
    z: float | None
    p_value: float | None
    significant: bool


@dataclass(frozen=True)
class Evaluation:
    """The response uplift and the money: incremental revenue, what the campaign cost, and ROI (None without cost)."""

    response: Uplift
    incremental_revenue_fen: int
    cost_fen: int
    roi: Decimal | None


def uplift(p: Proportions, confidence: float = 0.95) -> Uplift:
    """Treatment rate minus control rate.

    The test is the score test (statsmodels method "score": the pooled two-proportion z-test, with the
    Miettinen-Nurminen n/(n-1) variance correction). It estimates the variance under "no difference", so it keeps its
    false-positive rate with a small control group and low response rates, where the Wald test runs anti-conservative;
    and it is defined whenever either group varies, where Wald has no variance if one rate is 0 and the other 1.

    The interval is Newcomb's hybrid score interval (method "newcomb", from the two Wilson intervals): good coverage
    at low rates and small groups, always inside [-1, 1] and finite, including when both rates are 0 or both 1, where
    the Wald interval collapses to a single point. The score interval would match the test exactly, but statsmodels'
    root search for it fails on ordinary inputs, so near the threshold the interval and the test may rarely disagree;
    `significant` follows the test."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if p.treated_n == 0:
        raise ValueError("treated group is empty")
    if p.control_n == 0:
        raise ValueError("control group is empty")
    alpha = 1 - confidence
    counts = (p.treated_successes, p.treated_n, p.control_successes, p.control_n)
    treatment_rate = p.treated_successes / p.treated_n
    control_rate = p.control_successes / p.control_n
    no_variance = p.treated_successes == p.control_successes == 0 or (
        p.treated_successes == p.treated_n and p.control_successes == p.control_n
    )
    # statsmodels also computes ratio and odds-ratio on the way, which divide by zero at rates of 0 or 1; both unused.
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(*counts, method="newcomb", compare="diff", alpha=alpha)
        if no_variance:
            z = p_value = None
        else:
            test = test_proportions_2indep(*counts, method="score", compare="diff", value=0, correction=True)
            z, p_value = float(test.statistic), float(test.pvalue)
    return Uplift(
        treatment_rate=treatment_rate,
        control_rate=control_rate,
        uplift=treatment_rate - control_rate,
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        z=z,
        p_value=p_value,
        significant=p_value is not None and p_value < alpha,
    )


def retention(churned: Proportions, confidence: float = 0.95) -> Uplift:
    """Uplift of the churn rate for retention (维系) campaigns: successes are churners.

    Read the sign the other way round: a negative uplift means fewer treated customers left, i.e. the campaign kept
    customers; a significant positive uplift means it drove them away."""
    return uplift(churned, confidence)


def incremental_revenue_fen(treated_n: int, treated_revenue_fen: int, control_n: int, control_revenue_fen: int) -> int:
    """Revenue the campaign added: (treated per customer − control per customer) × treated customers.

    Whole fen rounded half up (ties away from zero), from a single division so the only rounding is the last one."""
    if treated_n <= 0:
        raise ValueError("treated group is empty")
    if control_n <= 0:
        raise ValueError("control group is empty")
    added = Decimal(treated_revenue_fen * control_n - control_revenue_fen * treated_n) / control_n
    return int(added.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def roi(incremental_revenue_fen: int, cost_fen: int) -> Decimal | None:
    """(incremental − cost) / cost to 4 places half up: 0 breaks even, −1 earned nothing; None for a free campaign."""
    if cost_fen < 0:
        raise ValueError(f"cost must not be negative, got {cost_fen} fen")
    if cost_fen == 0:
        return None
    return (Decimal(incremental_revenue_fen - cost_fen) / cost_fen).quantize(ROI_PLACES, rounding=ROUND_HALF_UP)


def evaluate(
    responses: Proportions,
    treated_revenue_fen: int,
    control_revenue_fen: int,
    cost_fen: int,
    confidence: float = 0.95,
) -> Evaluation:
    """The campaign's report card; revenue per customer uses the same group sizes as the response rates."""
    incremental = incremental_revenue_fen(
        responses.treated_n, treated_revenue_fen, responses.control_n, control_revenue_fen
    )
    return Evaluation(
        response=uplift(responses, confidence),
        incremental_revenue_fen=incremental,
        cost_fen=cost_fen,
        roi=roi(incremental, cost_fen),
    )
