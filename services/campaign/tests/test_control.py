"""Control groups (对照组): the split is reproducible, differs per campaign, holds out the share asked for, and never
puts a customer on both sides."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from crm_campaign.domain.control import DEFAULT_HOLDOUT, assign, in_control

CUSTOMERS = [f"1380{i:07d}" for i in range(20_000)]


def test_the_split_is_reproducible_and_matches_the_per_customer_answer() -> None:
    first = assign("spring-promo", CUSTOMERS, DEFAULT_HOLDOUT)
    again = assign("spring-promo", reversed(CUSTOMERS), DEFAULT_HOLDOUT)
    assert first[1] == list(reversed(again[1])), "membership must not depend on the order or the batch"
    assert first[1] == [c for c in CUSTOMERS if in_control("spring-promo", c, DEFAULT_HOLDOUT)]


def test_the_draw_is_the_first_eight_bytes_of_sha256_compared_exactly() -> None:
    """Pinned to the documented formula, so a rewrite cannot silently reshuffle every running campaign's holdout."""
    digest = hashlib.sha256(b"spring-promo:13800000042").digest()
    scaled = int.from_bytes(digest[:8], "big") * 5**64
    assert not in_control("spring-promo", "13800000042", Decimal(f"{scaled}E-64")), "draw / 2**64, exactly"
    assert in_control("spring-promo", "13800000042", Decimal(f"{scaled + 1}E-64"))


def test_different_campaigns_hold_out_different_customers() -> None:
    """Independent holdouts: about a tenth of one campaign's control group is in another's, not all of it."""
    control_a = set(assign("spring-promo", CUSTOMERS, DEFAULT_HOLDOUT)[1])
    control_b = set(assign("summer-promo", CUSTOMERS, DEFAULT_HOLDOUT)[1])
    overlap = len(control_a & control_b) / len(control_a)
    assert 0.08 <= overlap <= 0.12, f"overlap {overlap:.3f}; independent draws give ~0.10 (±0.02 is 3 sd)"


def test_the_control_share_is_close_to_the_one_asked_for() -> None:
    treatment, control = assign("spring-promo", CUSTOMERS, Decimal("0.10"))
    share = len(control) / len(CUSTOMERS)
    assert len(treatment) + len(control) == len(CUSTOMERS)
    assert abs(share - 0.10) <= 0.01, f"control share {share:.4f}; binomial sd is 0.0021 at n=20000, so ±0.01 is 4.7 sd"


def test_raising_the_share_only_adds_to_the_control_group() -> None:
    small = set(assign("spring-promo", CUSTOMERS, Decimal("0.05"))[1])
    large = set(assign("spring-promo", CUSTOMERS, Decimal("0.20"))[1])
    assert small < large


def test_share_zero_means_no_control_group() -> None:
    treatment, control = assign("spring-promo", CUSTOMERS, Decimal(0))
    assert control == []
    assert treatment == CUSTOMERS


@pytest.mark.parametrize("share", [Decimal("-0.01"), Decimal(1), Decimal("1.5"), Decimal("NaN"), Decimal("Infinity")])
def test_a_share_outside_zero_to_one_is_refused(share: Decimal) -> None:
    with pytest.raises(ValueError, match="control share"):
        in_control("spring-promo", "13800000042", share)
    with pytest.raises(ValueError, match="control share"):
        assign("spring-promo", [], share)


def test_a_repeated_customer_lands_in_one_group_once() -> None:
    ids = CUSTOMERS[:500]
    treatment, control = assign("spring-promo", ids + ids[::-1] + ids[:50], Decimal("0.30"))
    treated, held_out = set(treatment), set(control)
    assert not treated & held_out
    assert len(treatment) + len(control) == len(ids)
    assert treated | held_out == set(ids)
    assert held_out, "at share 0.30 some of 500 customers must be held out"
    assert treatment == [c for c in ids if c in treated], "groups keep the order of first appearance"
    assert control == [c for c in ids if c in held_out]
