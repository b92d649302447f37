"""The SLA clock: business time on the Asia/Shanghai calendar (nights, weekends, 国庆, 调休), checked against a slow
minute-by-minute count written here; the clock's pauses, breach and warning instants; policy choice and the green
channel. Fixed aware datetimes are the clock: nothing reads the real time."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from crm_ticketing.domain.sla import (
    BUSINESS_DAY,
    BUSINESS_HOURS,
    DEFAULT_CALENDARS,
    DEFAULT_POLICIES,
    SHANGHAI,
    TWENTY_FOUR_SEVEN,
    WARN_AT,
    BusinessCalendar,
    SlaClock,
    SlaPolicy,
    pick_policy,
)
from crm_ticketing.schemas.trouble_ticket import CATEGORIES, PRIORITIES

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
US = timedelta(microseconds=1)


def sh(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """A 2024 instant on the Shanghai wall clock."""
    return datetime(2024, month, day, hour, minute, second, micro, tzinfo=SHANGHAI)


def _days(first: date, last: date) -> frozenset[date]:
    return frozenset(first + timedelta(days=i) for i in range((last - first).days + 1))


# 2024 as the State Council set it: 中秋 15-17 Sep with Saturday 14 Sep worked; 国庆 1-7 Oct with Sunday 29 Sep
# and Saturday 12 Oct worked.
HOLIDAYS_2024 = _days(date(2024, 9, 15), date(2024, 9, 17)) | _days(date(2024, 10, 1), date(2024, 10, 7))
MAKEUP_2024 = frozenset({date(2024, 9, 14), date(2024, 9, 29), date(2024, 10, 12)})
CN_2024 = BusinessCalendar(name="cn-2024", holidays=HOLIDAYS_2024, makeup_days=MAKEUP_2024)


def test_the_fixture_dates_fall_on_the_weekdays_the_tests_assume() -> None:
    assert [d.weekday() for d in sorted(MAKEUP_2024)] == [5, 6, 5]
    assert date(2024, 9, 30).weekday() == 0
    assert date(2024, 11, 8).weekday() == 4
    assert date(2024, 11, 4).weekday() == 0


# --- the calendar ------------------------------------------------------------------------------------------------


def test_across_a_night() -> None:
    assert CN_2024.add(sh(11, 4, 17), 2 * H) == sh(11, 5, 10)
    assert CN_2024.elapsed(sh(11, 4, 17), sh(11, 5, 10)) == 2 * H
    assert CN_2024.elapsed(sh(11, 4, 12), sh(11, 5, 12)) == 9 * H


def test_a_duration_that_ends_at_closing_ends_there_and_a_microsecond_more_runs_into_the_next_morning() -> None:
    assert CN_2024.add(sh(11, 4, 17, 30), 30 * MIN) == sh(11, 4, 18)
    assert CN_2024.add(sh(11, 4, 17, 30), 30 * MIN + US) == sh(11, 5, 9, 0, 0, 1)
    assert CN_2024.elapsed(sh(11, 4, 17, 59, 59, 999_999), sh(11, 5, 9, 0, 0, 1)) == 2 * US


def test_across_a_weekend() -> None:
    assert CN_2024.add(sh(11, 8, 17, 30), H) == sh(11, 11, 9, 30)
    assert CN_2024.elapsed(sh(11, 8, 17, 30), sh(11, 11, 9, 30)) == H
    assert CN_2024.elapsed(sh(11, 8, 12), sh(11, 11, 12)) == 9 * H
    assert CN_2024.elapsed(sh(11, 9, 8), sh(11, 10, 20)) == timedelta(0)


def test_across_national_day() -> None:
    assert CN_2024.add(sh(9, 30, 16), 4 * H) == sh(10, 8, 11)
    assert BUSINESS_HOURS.add(sh(9, 30, 16), 4 * H) == sh(10, 1, 11)
    assert CN_2024.elapsed(sh(9, 30, 0), sh(10, 8, 0)) == 9 * H
    assert BUSINESS_HOURS.elapsed(sh(9, 30, 0), sh(10, 8, 0)) == 6 * 9 * H
    assert CN_2024.add(sh(10, 3, 10), H) == sh(10, 8, 10)


def test_on_make_up_working_days() -> None:
    assert CN_2024.add(sh(10, 11, 17), 2 * H) == sh(10, 12, 10)
    assert BUSINESS_HOURS.add(sh(10, 11, 17), 2 * H) == sh(10, 14, 10)
    assert CN_2024.elapsed(sh(10, 12, 0), sh(10, 13, 0)) == 9 * H
    assert CN_2024.add(sh(9, 28, 12), 12 * H) == sh(9, 30, 12)
    assert CN_2024.is_workday(date(2024, 9, 29))
    assert not CN_2024.is_workday(date(2024, 10, 2))
    assert not CN_2024.is_workday(date(2024, 9, 28))


def test_starting_outside_hours_counts_from_the_next_opening() -> None:
    assert CN_2024.add(sh(11, 4, 7), H) == sh(11, 4, 10)
    assert CN_2024.add(sh(11, 4, 20), H) == sh(11, 5, 10)
    assert CN_2024.add(sh(11, 9, 11), H) == sh(11, 11, 10)
    assert CN_2024.add(sh(9, 15, 10), H) == sh(9, 18, 10)


def test_a_zero_duration_is_the_start_itself() -> None:
    assert CN_2024.add(sh(11, 9, 11), timedelta(0)) == sh(11, 9, 11)
    assert CN_2024.add(sh(11, 4, 10), timedelta(0)) == sh(11, 4, 10)


def test_weeks_at_a_time_with_holidays_and_make_up_days_in_between() -> None:
    # From Monday 2 Sep: 5 + 5 days, Saturday 14 Sep worked, 中秋 off, 18-20 Sep, 23-27 Sep, Sunday 29 Sep worked.
    assert CN_2024.add(sh(9, 2, 9), 20 * 9 * H) == sh(9, 29, 18)
    assert CN_2024.add(sh(9, 2, 9), 20 * 9 * H + US) == sh(9, 30, 9, 0, 0, 1)
    assert CN_2024.elapsed(sh(9, 2, 9), sh(9, 29, 18)) == 20 * 9 * H
    assert BUSINESS_HOURS.add(sh(9, 2, 9), 20 * 9 * H) == sh(9, 27, 18)
    # 250 working days from Tuesday 2 January: 50 whole weeks without holidays; 7 weekdays off and 3 make-up days
    # in the autumn push the end 4 working days later.
    assert BUSINESS_HOURS.add(sh(1, 2, 9), 250 * 9 * H) == sh(12, 16, 18)
    assert CN_2024.add(sh(1, 2, 9), 250 * 9 * H) == sh(12, 20, 18)
    assert CN_2024.elapsed(sh(1, 2, 9), sh(12, 20, 18)) == 250 * 9 * H


def test_a_calendar_open_every_day_of_the_week() -> None:
    store = BusinessCalendar(name="store", workdays=frozenset(range(7)), opens=time(10), closes=time(22))
    assert store.add(sh(11, 3, 22), 7 * 12 * H) == sh(11, 10, 22)
    assert store.add(sh(11, 3, 22), 15 * 12 * H) == sh(11, 18, 22)
    assert store.elapsed(sh(11, 3, 22), sh(11, 18, 22)) == 15 * 12 * H


def test_answers_come_in_utc_and_any_aware_zone_goes_in() -> None:
    due = CN_2024.add(datetime(2024, 11, 4, 9, 0, tzinfo=UTC), H)
    assert due.utcoffset() == timedelta(0)
    assert due == sh(11, 4, 18)
    nine_shanghai = datetime(2024, 11, 4, 1, 0, tzinfo=UTC)
    assert CN_2024.elapsed(nine_shanghai, nine_shanghai + 90 * MIN) == 90 * MIN
    assert CN_2024.elapsed(nine_shanghai - US, nine_shanghai + 90 * MIN) == 90 * MIN


def test_the_end_before_the_start_is_no_time() -> None:
    assert CN_2024.elapsed(sh(11, 5, 12), sh(11, 4, 12)) == timedelta(0)
    assert CN_2024.elapsed(sh(11, 5, 12), sh(11, 5, 12)) == timedelta(0)


def test_twenty_four_seven_is_plain_arithmetic() -> None:
    start = sh(9, 30, 23, 59, 59, 999_999)
    for duration in (timedelta(0), US, 15 * MIN, 4 * H, timedelta(days=9, microseconds=7)):
        assert TWENTY_FOUR_SEVEN.add(start, duration) == start + duration
        assert TWENTY_FOUR_SEVEN.elapsed(start, start + duration) == duration
    assert TWENTY_FOUR_SEVEN.elapsed(sh(10, 2), sh(10, 1)) == timedelta(0)
    assert TWENTY_FOUR_SEVEN.elapsed(sh(10, 1, 8), datetime(2024, 10, 1, 0, 30, tzinfo=UTC)) == 30 * MIN


def test_naive_times_and_negative_durations_are_refused() -> None:
    naive = datetime(2024, 11, 4, 10)
    for calendar in (CN_2024, TWENTY_FOUR_SEVEN):
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.add(naive, H)
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.elapsed(naive, sh(11, 5))
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.elapsed(sh(11, 5), naive)
        with pytest.raises(ValueError, match="negative"):
            calendar.add(sh(11, 4), -US)


def test_a_calendar_that_cannot_be_is_refused() -> None:
    with pytest.raises(ValueError, match="both a holiday and a make-up"):
        BusinessCalendar(name="x", holidays={date(2024, 10, 12)}, makeup_days={date(2024, 10, 12)})
    with pytest.raises(ValueError, match="open before it closes"):
        BusinessCalendar(name="x", opens=time(18), closes=time(9))
    with pytest.raises(ValueError, match="workdays"):
        BusinessCalendar(name="x", workdays=frozenset())


@dataclass(frozen=True)
class Rule:
    """The slow reference: is this wall-clock minute open? Nothing from the module under test."""

    workdays: frozenset[int]
    opens: time
    closes: time
    holidays: frozenset[date]
    makeup_days: frozenset[date]

    def open_at(self, wall: datetime) -> bool:
        day = wall.date()
        works = day in self.makeup_days or (day.weekday() in self.workdays and day not in self.holidays)
        return works and self.opens <= wall.time() < self.closes

    def add(self, start: datetime, minutes: int) -> datetime:
        wall = start.astimezone(SHANGHAI).replace(tzinfo=None)
        while minutes:
            if self.open_at(wall):
                minutes -= 1
            wall += MIN
        return wall.replace(tzinfo=SHANGHAI)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        wall, stop = (at.astimezone(SHANGHAI).replace(tzinfo=None) for at in (start, end))
        minutes = 0
        while wall < stop:
            minutes += self.open_at(wall)
            wall += MIN
        return minutes * MIN


RULES = [
    Rule(frozenset(range(5)), time(9), time(18), HOLIDAYS_2024, MAKEUP_2024),
    Rule(frozenset(range(6)), time(8, 30), time(17, 45), HOLIDAYS_2024, frozenset({date(2024, 9, 29)})),
]


@pytest.mark.parametrize("rule", RULES)
def test_against_a_minute_by_minute_count(rule: Rule) -> None:
    calendar = BusinessCalendar(
        name="random",
        workdays=rule.workdays,
        opens=rule.opens,
        closes=rule.closes,
        holidays=rule.holidays,
        makeup_days=rule.makeup_days,
    )
    draw = random.Random(621)
    for _ in range(8):
        start = sh(9, 1) + draw.randrange(60 * 24 * 50) * MIN
        minutes = draw.randrange(25 * 9 * 60)
        assert calendar.add(start, minutes * MIN) == rule.add(start, minutes), (start, minutes)
        end = start + draw.randrange(60 * 24 * 35) * MIN
        assert calendar.elapsed(start, end) == rule.elapsed(start, end), (start, end)


def test_add_and_elapsed_agree_to_the_microsecond() -> None:
    draw = random.Random(20241001)
    for _ in range(400):
        start = sh(9, 1) + timedelta(microseconds=draw.randrange(60 * 86_400 * 10**6))
        duration = timedelta(microseconds=draw.randrange(40 * 9 * 3600 * 10**6))
        due = CN_2024.add(start, duration)
        assert CN_2024.elapsed(start, due) == duration
        if duration:
            assert CN_2024.elapsed(start, due - US) < duration


# --- the clock ---------------------------------------------------------------------------------------------------


def test_a_pause_over_the_weekend_counts_none_of_the_gap() -> None:
    running = SlaClock.start(8 * H, BUSINESS_HOURS, sh(11, 8, 16))
    paused = running.pause(sh(11, 8, 17))
    assert paused.elapsed(sh(11, 11, 9, 30)) == H
    resumed = paused.resume(sh(11, 11, 10))
    # Unpaused, the gap Friday 17:00 - Monday 10:00 would have counted 2 h (17-18 on Friday, 9-10 on Monday).
    assert resumed.elapsed(sh(11, 11, 11)) == 2 * H
    assert running.elapsed(sh(11, 11, 11)) == 4 * H
    assert resumed.due_at(sh(11, 11, 11)) == sh(11, 11, 17)
    assert running.due_at(sh(11, 11, 11)) == sh(11, 11, 15)


def test_the_clock_is_immutable() -> None:
    running = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10))
    paused = running.pause(sh(11, 4, 11))
    assert paused is not running
    assert not running.paused
    assert paused.paused
    assert running.elapsed(sh(11, 4, 12)) == 2 * H
    with pytest.raises(dataclasses.FrozenInstanceError):
        running.accumulated = H  # type: ignore[misc]


def test_due_at_moves_later_after_a_pause_and_is_none_while_paused() -> None:
    clock = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10))
    assert clock.due_at(sh(11, 4, 10)) == sh(11, 4, 14)
    clock = clock.pause(sh(11, 4, 11))
    assert clock.due_at(sh(11, 4, 12)) is None
    clock = clock.resume(sh(11, 4, 15))
    assert clock.due_at(sh(11, 4, 15)) == sh(11, 4, 18)
    clock = clock.pause(sh(11, 4, 16)).resume(sh(11, 5, 10))
    assert clock.elapsed(sh(11, 5, 10)) == 2 * H
    assert clock.due_at(sh(11, 5, 10)) == sh(11, 5, 12)


def test_warning_at_eighty_percent_and_breach_at_the_target_to_the_microsecond() -> None:
    assert WARN_AT == 0.8
    clock = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 16))
    assert clock.fraction(sh(11, 4, 18, 30)) == 0.5
    assert not clock.warning(sh(11, 5, 10, 11, 59, 999_999))
    assert clock.fraction(sh(11, 5, 10, 11, 59, 999_999)) < 0.8
    assert clock.warning(sh(11, 5, 10, 12))
    assert clock.fraction(sh(11, 5, 10, 12)) == 0.8
    assert clock.warning(sh(11, 5, 10, 59, 59, 999_999))
    assert not clock.breached(sh(11, 5, 10, 59, 59, 999_999))
    assert clock.remaining(sh(11, 5, 10, 59, 59, 999_999)) == US
    assert clock.breached(sh(11, 5, 11))
    assert not clock.warning(sh(11, 5, 11))
    assert clock.fraction(sh(11, 5, 11)) == 1.0
    assert clock.due_at(sh(11, 5, 9)) == sh(11, 5, 11)
    assert clock.remaining(sh(11, 5, 12)) == -H


def test_due_at_closing_time_is_breached_all_night() -> None:
    clock = SlaClock.start(2 * H, BUSINESS_HOURS, sh(11, 4, 16))
    assert clock.due_at(sh(11, 4, 16)) == sh(11, 4, 18)
    assert not clock.breached(sh(11, 4, 17, 59, 59, 999_999))
    assert clock.breached(sh(11, 4, 18))
    assert clock.breached(sh(11, 5, 8))
    assert clock.remaining(sh(11, 5, 8)) == timedelta(0)


def test_stop_freezes_the_clock() -> None:
    clock = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10))
    met = clock.stop(sh(11, 4, 13, 30))
    assert met.stopped
    assert met.elapsed(sh(11, 4, 13, 30)) == 3 * H + 30 * MIN
    assert met.elapsed(sh(11, 8, 17)) == 3 * H + 30 * MIN
    assert not met.breached(sh(11, 8, 17))
    assert not met.warning(sh(11, 8, 17))
    assert clock.warning(sh(11, 4, 13, 30))
    assert met.due_at(sh(11, 4, 14)) is None
    assert met.breached_at is None
    missed = clock.stop(sh(11, 4, 15))
    assert missed.breached(sh(11, 20))
    assert missed.elapsed(sh(11, 20)) == 5 * H
    assert missed.breached_at == sh(11, 4, 14)


def test_a_paused_clock_can_stop() -> None:
    clock = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10)).pause(sh(11, 4, 11)).stop(sh(11, 6, 10))
    assert clock.elapsed(sh(11, 20)) == H
    assert not clock.paused
    assert clock.stopped_at == sh(11, 6, 10)


def test_a_breach_in_an_earlier_segment_keeps_its_instant() -> None:
    clock = SlaClock.start(H, BUSINESS_HOURS, sh(11, 4, 10)).pause(sh(11, 4, 12))
    assert clock.breached_at == sh(11, 4, 11)
    assert clock.breached(sh(11, 4, 13))
    clock = clock.resume(sh(11, 4, 14))
    assert clock.due_at(sh(11, 4, 15)) == sh(11, 4, 11)
    assert clock.elapsed(sh(11, 4, 15)) == 3 * H


def test_a_round_the_clock_policy_runs_through_the_night() -> None:
    clock = SlaClock.start(4 * H, TWENTY_FOUR_SEVEN, sh(11, 8, 22))
    assert clock.due_at(sh(11, 8, 22)) == sh(11, 9, 2)
    assert clock.fraction(sh(11, 9, 1, 12)) == 0.8


def test_misuse_is_a_value_error() -> None:
    running = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10))
    paused = running.pause(sh(11, 4, 11))
    stopped = running.stop(sh(11, 4, 12))
    with pytest.raises(ValueError, match="already paused"):
        paused.pause(sh(11, 4, 12))
    with pytest.raises(ValueError, match="already running"):
        running.resume(sh(11, 4, 12))
    for change in (stopped.pause, stopped.resume, stopped.stop):
        with pytest.raises(ValueError, match="stopped"):
            change(sh(11, 4, 13))
    with pytest.raises(ValueError, match="before the clock's last change"):
        paused.resume(sh(11, 4, 10, 59))
    with pytest.raises(ValueError, match="before the clock's last change"):
        running.pause(sh(11, 4, 9))


def test_the_clock_refuses_naive_times_and_impossible_states() -> None:
    naive = datetime(2024, 11, 4, 10)
    running = SlaClock.start(4 * H, BUSINESS_HOURS, sh(11, 4, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        SlaClock.start(4 * H, BUSINESS_HOURS, naive)
    for reading in (running.pause, running.stop, running.elapsed, running.due_at, running.breached):
        with pytest.raises(ValueError, match="timezone-aware"):
            reading(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        running.stop(sh(11, 5)).elapsed(naive)
    with pytest.raises(ValueError, match="exactly one"):
        SlaClock(4 * H, BUSINESS_HOURS, sh(11, 4), running_since=sh(11, 4), paused_at=sh(11, 4))
    with pytest.raises(ValueError, match="positive"):
        SlaClock.start(timedelta(0), BUSINESS_HOURS, sh(11, 4))
    with pytest.raises(ValueError, match="must say when it breached"):
        SlaClock(H, BUSINESS_HOURS, sh(11, 4), accumulated=H, paused_at=sh(11, 4, 12))


# --- policies ----------------------------------------------------------------------------------------------------


def _policy(category: str, tier: str, hours: int, priority: str = "medium") -> SlaPolicy:
    return SlaPolicy(category, priority, tier, H, hours * H, "business_hours")


TABLE = [
    _policy("*", "standard", 45),
    _policy("*", "key_account", 18),
    _policy("billing_dispute", "standard", 18),
    _policy("billing_dispute", "key_account", 9),
    _policy("broadband_fault", "standard", 24),
    _policy("*", "key_account", 4, priority="critical"),
]


@pytest.mark.parametrize(
    ("category", "key_account", "expected"),
    [
        ("billing_dispute", False, "billing_dispute:medium:standard"),
        ("billing_dispute", True, "billing_dispute:medium:key_account"),
        ("broadband_fault", True, "broadband_fault:medium:standard"),
        ("staff_complaint", True, "*:medium:key_account"),
        ("staff_complaint", False, "*:medium:standard"),
    ],
)
def test_the_most_specific_policy_wins_whatever_the_order(category: str, key_account: bool, expected: str) -> None:
    for seed in range(5):
        table = TABLE.copy()
        random.Random(seed).shuffle(table)
        assert pick_policy(table, category, "medium", key_account).id == expected


def test_a_standard_customer_never_gets_the_green_channel() -> None:
    with pytest.raises(LookupError, match="no SLA policy"):
        pick_policy(TABLE, "billing_dispute", "critical", False)
    assert pick_policy(TABLE, "billing_dispute", "critical", True).id == "*:critical:key_account"


def test_a_bad_priority_or_an_ambiguous_table_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown priority"):
        pick_policy(TABLE, "billing_dispute", "urgent", False)
    with pytest.raises(ValueError, match="tie"):
        pick_policy([*TABLE, _policy("billing_dispute", "standard", 9)], "billing_dispute", "medium", False)
    with pytest.raises(ValueError, match="unknown tier"):
        _policy("billing_dispute", "gold", 9)


def test_the_default_table_covers_every_ticket_and_the_green_channel_is_faster() -> None:
    assert len({policy.id for policy in DEFAULT_POLICIES}) == len(DEFAULT_POLICIES)
    for policy in DEFAULT_POLICIES:
        assert policy.calendar in DEFAULT_CALENDARS
        assert policy.first_response < policy.resolution
    for category in CATEGORIES:
        for priority in PRIORITIES:
            standard = pick_policy(DEFAULT_POLICIES, category, priority, False)
            green = pick_policy(DEFAULT_POLICIES, category, priority, True)
            assert (standard.tier, green.tier) == ("standard", "key_account")
            assert green.category == standard.category
            assert green.first_response < standard.first_response
            assert green.resolution < standard.resolution
        targets = [pick_policy(DEFAULT_POLICIES, category, p, False).resolution for p in PRIORITIES]
        assert targets == sorted(targets)


def test_the_default_numbers() -> None:
    outage = pick_policy(DEFAULT_POLICIES, "network_coverage", "critical", False)
    assert (outage.first_response, outage.resolution, outage.calendar) == (15 * MIN, 4 * H, "24x7")
    billing = pick_policy(DEFAULT_POLICIES, "billing_dispute", "medium", False)
    assert (billing.first_response, billing.resolution, billing.calendar) == (2 * H, 18 * H, "business_hours")
    assert BUSINESS_DAY == 9 * H
    green = pick_policy(DEFAULT_POLICIES, "billing_dispute", "medium", True)
    assert (green.first_response, green.resolution) == (H, 9 * H)


def test_a_billing_dispute_raised_on_friday_afternoon() -> None:
    policy = pick_policy(DEFAULT_POLICIES, "billing_dispute", "medium", False)
    calendar = DEFAULT_CALENDARS[policy.calendar]
    raised = sh(11, 8, 16, 30)
    assert SlaClock.start(policy.first_response, calendar, raised).due_at(raised) == sh(11, 11, 9, 30)
    assert SlaClock.start(policy.resolution, calendar, raised).due_at(raised) == sh(11, 12, 16, 30)
