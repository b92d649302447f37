"""How personal data and times are shown: masked numbers (PIPL) and China Standard Time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm_kit.presentation import mask_id_card, mask_msisdn, shanghai, yuan


@pytest.mark.parametrize(
    ("msisdn", "masked"),
    [
        ("13812345678", "138****5678"),
        ("19925880001", "199****0001"),
        ("8613812345678", "861******5678"),
    ],
)
def test_a_phone_number_keeps_its_first_three_and_last_four_digits(msisdn: str, masked: str):
    assert mask_msisdn(msisdn) == masked
    assert len(masked) == len(msisdn)


@pytest.mark.parametrize("value", [None, ""])
def test_no_phone_number_stays_none_or_empty(value):
    assert mask_msisdn(value) == value


def test_a_too_short_number_shows_no_middle_to_mask():
    assert mask_msisdn("10086") == "10086"  # a service number, not a subscriber's


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("110101199003071234", "110101********1234"),
        ("44030319880312051X", "440303********051X"),
    ],
)
def test_an_id_card_keeps_its_region_code_and_last_four(number: str, masked: str):
    assert mask_id_card(number) == masked
    assert len(masked) == len(number)
    assert number[6:14] not in masked, "the birth date is hidden"


@pytest.mark.parametrize("value", [None, ""])
def test_no_id_card_stays_none_or_empty(value):
    assert mask_id_card(value) == value


def test_a_utc_moment_is_shown_in_shanghai_time_with_its_offset():
    assert shanghai(datetime(2026, 11, 20, 1, 30, tzinfo=UTC)) == "2026-11-20T09:30:00+08:00"


def test_the_shanghai_day_can_differ_from_the_utc_day():
    assert shanghai(datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == "2027-01-01T00:00:00+08:00"


def test_any_aware_moment_is_converted_not_relabelled():
    new_york = timezone(timedelta(hours=-5))
    assert shanghai(datetime(2026, 11, 19, 20, 30, tzinfo=new_york)) == "2026-11-20T09:30:00+08:00"


def test_no_moment_shows_as_none():
    assert shanghai(None) is None


def test_a_naive_time_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="naive"):
        shanghai(datetime(2026, 11, 20, 9, 30))


@pytest.mark.parametrize(("fen", "shown"), [(14900, "149.00"), (5, "0.05"), (0, "0.00"), (-320, "-3.20")])
def test_fen_are_shown_as_exact_yuan(fen, shown):
    assert yuan(fen) == shown
