"""SLA clocks: how long a ticket may wait for its first response (首次响应) and for its resolution (处理时限).

Operators promise both per kind of ticket × priority × customer tier; key accounts (大客户) get the green channel
(绿色通道) with shorter targets. Network faults are counted round the clock (the NOC never closes); back-office
work such as a billing dispute counts only business hours, on the Asia/Shanghai calendar with the public holidays
(法定节假日) and make-up working days (调休) the State Council announces each year. Instants go in timezone-aware
(naive ones are refused, never guessed) and come out in UTC.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZERO = timedelta(0)
_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)

WARN_AT = 0.8
"""Share of the target after which a running clock warns (预警); at 1.0 it is breached (超时)."""


def utc(at: datetime, what: str) -> datetime:
    """`at` in UTC; a naive time names no instant, so it is refused rather than guessed."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got the naive {at.isoformat()}")
    return at.astimezone(UTC)


def _not_negative(duration: timedelta) -> timedelta:
    if duration < ZERO:
        raise ValueError(f"a duration to add cannot be negative, got {duration}")
    return duration


class Calendar(Protocol):
    """What a clock needs from a calendar: business time forwards from an instant, and between two."""

    @property
    def name(self) -> str: ...

    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...


@dataclass(frozen=True)
class RoundTheClock:
    """7×24: every minute counts, so business time is plain time."""

    name: str = "24x7"

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` + `duration`, in UTC."""
        return utc(start, "start") + _not_negative(duration)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """`end` - `start`, or zero when `end` is not after `start`."""
        return max(utc(end, "end") - utc(start, "start"), ZERO)


@dataclass(frozen=True)
class BusinessCalendar:
    """Counts the opening hours of working days only. A working day is a weekday in `workdays` that is not one of
    the `holidays`, or one of the `makeup_days`. Hours are read on the local wall clock of `tz` (Asia/Shanghai keeps
    no daylight saving, so that is also real time). No holidays are built in: the State Council publishes the
    next year's schedule each winter, and whoever builds the calendar loads it."""

    name: str
    workdays: frozenset[int] = frozenset(range(5))
    """Weekdays that work, Monday = 0 as in `date.weekday()`."""
    opens: time = time(9)
    closes: time = time(18)
    holidays: frozenset[date] = frozenset()
    """Days off even on a working weekday, e.g. 国庆 1-7 October."""
    makeup_days: frozenset[date] = frozenset()
    """调休: days that work even on a weekend, e.g. the Saturday after 国庆."""
    tz: tzinfo = SHANGHAI
    _holidays: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _makeup_days: tuple[date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("workdays", "holidays", "makeup_days"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        if not self.workdays or not self.workdays <= frozenset(range(7)):
            raise ValueError(f"workdays must be weekdays 0 (Monday) to 6, at least one, got {sorted(self.workdays)}")
        if self.opens >= self.closes:
            raise ValueError(f"the calendar must open before it closes, got {self.opens} to {self.closes}")
        if both := self.holidays & self.makeup_days:
            raise ValueError(f"a day cannot be both a holiday and a make-up working day: {sorted(both)}")
        object.__setattr__(self, "_holidays", tuple(sorted(self.holidays)))
        object.__setattr__(self, "_makeup_days", tuple(sorted(self.makeup_days)))

    @property
    def day_length(self) -> timedelta:
        """The business time in one working day."""
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def is_workday(self, day: date) -> bool:
        return day in self.makeup_days or (day.weekday() in self.workdays and day not in self.holidays)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant at which `duration` of business time has passed since `start`, in UTC. Counting begins
        at the next opening when `start` is outside hours; a duration that ends exactly at a closing time ends
        there, not at the next opening. A zero duration is `start` itself."""
        start = utc(start, "start")
        if not _not_negative(duration):
            return start
        begin = self._wall(start)
        day = begin.date()
        if self.is_workday(day):
            begin = max(begin, datetime.combine(day, self.opens))
            left_today = max(datetime.combine(day, self.closes) - begin, ZERO)
            if duration <= left_today:
                return self._instant(begin + duration)
            duration -= left_today
        days = -(-duration // self.day_length)
        last_day = self._nth_workday(day + _ONE_DAY, days)
        return self._instant(datetime.combine(last_day, self.opens) + duration - (days - 1) * self.day_length)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """The business time between two instants; zero when `end` is not after `start`."""
        start, end = utc(start, "start"), utc(end, "end")
        if end <= start:
            return ZERO
        begin, finish = self._wall(start), self._wall(end)
        first, last = begin.date(), finish.date()
        if first == last:
            return self._open_between(first, begin, finish)
        return (
            self._open_between(first, begin, datetime.combine(first + _ONE_DAY, _MIDNIGHT))
            + self._workdays_between(first + _ONE_DAY, last) * self.day_length
            + self._open_between(last, datetime.combine(last, _MIDNIGHT), finish)
        )

    def _wall(self, at: datetime) -> datetime:
        return at.astimezone(self.tz).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.tz).astimezone(UTC)

    def _open_between(self, day: date, begin: datetime, end: datetime) -> timedelta:
        """Business time between two wall-clock times of the same day."""
        if not self.is_workday(day):
            return ZERO
        return max(min(end, datetime.combine(day, self.closes)) - max(begin, datetime.combine(day, self.opens)), ZERO)

    def _workdays_between(self, first: date, stop: date) -> int:
        """Working days from `first` up to, not including, `stop`: whole weeks by arithmetic, then the holidays and
        make-up days in the range correct the count (only those that change a weekday's status)."""
        weeks, rest = divmod(max((stop - first).days, 0), 7)
        count = weeks * len(self.workdays) + sum((first.weekday() + i) % 7 in self.workdays for i in range(rest))
        count -= sum(day.weekday() in self.workdays for day in _within(self._holidays, first, stop))
        count += sum(day.weekday() not in self.workdays for day in _within(self._makeup_days, first, stop))
        return count

    def _nth_workday(self, day: date, n: int) -> date:
        """The `n`-th working day counting from `day` (n >= 1). Skips whole weeks while at least a week's worth is
        left: a week never holds more than 7 working days, so a skip cannot overshoot."""
        while True:
            if weeks := (n - 1) // 7:
                stop = day + timedelta(weeks=weeks)
                n -= self._workdays_between(day, stop)
                day = stop
                continue
            if self.is_workday(day):
                n -= 1
                if not n:
                    return day
            day += _ONE_DAY


def _within(days: tuple[date, ...], first: date, stop: date) -> tuple[date, ...]:
    return days[bisect_left(days, first) : bisect_left(days, stop)]


TWENTY_FOUR_SEVEN = RoundTheClock()
BUSINESS_HOURS = BusinessCalendar(name="business_hours")
"""Monday to Friday, 09:00-18:00 Asia/Shanghai, no holidays until some are loaded."""
DEFAULT_CALENDARS: dict[str, Calendar] = {calendar.name: calendar for calendar in (TWENTY_FOUR_SEVEN, BUSINESS_HOURS)}
BUSINESS_DAY = BUSINESS_HOURS.day_length
"""One business day = 9 business hours (09:00-18:00, no lunch break taken out): "two business days" from Monday
10:00 ends on Wednesday 10:00."""


@dataclass(frozen=True)
class SlaClock:
    """One clock (first response or resolution) of one ticket. Immutable: pause, resume and stop return a new clock,
    so a caller can persist or discard it as one value. Exactly one of `running_since`, `paused_at`, `stopped_at` is
    set. Business time up to the start of the current running segment is in `accumulated`.

    Breach is inclusive: the clock is breached once elapsed business time reaches the target, so `due_at` is the
    first breached instant. Misusing it (pausing a paused clock, resuming a running one, anything but reading a
    stopped one, or an event earlier than the clock's last change) raises ValueError."""

    target: timedelta
    calendar: Calendar
    started_at: datetime
    accumulated: timedelta = ZERO
    running_since: datetime | None = None
    paused_at: datetime | None = None
    stopped_at: datetime | None = None
    breached_at: datetime | None = None
    """Set when a segment that crossed the target is closed by a pause or a stop: the instant it was crossed."""

    def __post_init__(self) -> None:
        for name in ("started_at", "running_since", "paused_at", "stopped_at", "breached_at"):
            if (at := getattr(self, name)) is not None:
                object.__setattr__(self, name, utc(at, name))
        if self.target <= ZERO:
            raise ValueError(f"an SLA target must be positive, got {self.target}")
        if self.accumulated < ZERO:
            raise ValueError(f"accumulated business time cannot be negative, got {self.accumulated}")
        if sum(at is not None for at in (self.running_since, self.paused_at, self.stopped_at)) != 1:
            raise ValueError("a clock is exactly one of running, paused or stopped")
        if self.accumulated >= self.target and self.breached_at is None:
            raise ValueError("a clock whose accumulated time reached its target must say when it breached")

    @classmethod
    def start(cls, target: timedelta, calendar: Calendar, at: datetime) -> SlaClock:
        """A clock that starts running at `at`."""
        at = utc(at, "at")
        return cls(target=target, calendar=calendar, started_at=at, running_since=at)

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def pause(self, at: datetime) -> SlaClock:
        at = self._next_change(at, "pause")
        if self.paused_at is not None:
            raise ValueError(f"the clock is already paused, since {self.paused_at.isoformat()}")
        accumulated, breached_at = self._close_segment(at)
        return replace(self, accumulated=accumulated, breached_at=breached_at, running_since=None, paused_at=at)

    def resume(self, at: datetime) -> SlaClock:
        at = self._next_change(at, "resume")
        if self.running_since is not None:
            raise ValueError(f"the clock is already running, since {self.running_since.isoformat()}")
        return replace(self, running_since=at, paused_at=None)

    def stop(self, at: datetime) -> SlaClock:
        """The target is met (or missed) at `at`: from then on the clock reads the same forever. A paused clock can
        stop too (a ticket resolved while waiting for the customer)."""
        at = self._next_change(at, "stop")
        accumulated, breached_at = self._close_segment(at)
        return replace(
            self, accumulated=accumulated, breached_at=breached_at, running_since=None, paused_at=None, stopped_at=at
        )

    def elapsed(self, now: datetime) -> timedelta:
        """Business time counted so far (frozen while paused and once stopped)."""
        now = utc(now, "now")
        if self.running_since is None:
            return self.accumulated
        return self.accumulated + self.calendar.elapsed(self.running_since, now)

    def remaining(self, now: datetime) -> timedelta:
        """Business time left before the breach; negative once breached, by how much."""
        return self.target - self.elapsed(now)

    def fraction(self, now: datetime) -> float:
        """Elapsed over target: WARN_AT and above warns, 1.0 and above is breached."""
        return self.elapsed(now) / self.target

    def warning(self, now: datetime) -> bool:
        """At or past WARN_AT of the target but not breached, and still running or paused: the moment to alert
        the owner of the ticket. A stopped clock cannot breach any more, so it never warns."""
        return self.stopped_at is None and WARN_AT <= self.fraction(now) < 1

    def breached(self, now: datetime) -> bool:
        """Elapsed business time has reached the target (stays true after a stop that came too late)."""
        return self.elapsed(now) >= self.target

    def due_at(self, now: datetime) -> datetime | None:
        """The instant the clock breaches if it keeps running: past when already breached. None while paused (it
        cannot breach) and once stopped. While running the answer does not change with `now`; `now` is taken for
        symmetry with the other readings and checked like them."""
        utc(now, "now")
        if self.running_since is None:
            return None
        if self.accumulated >= self.target:
            return self.breached_at
        return self.calendar.add(self.running_since, self.target - self.accumulated)

    def warns_at(self, now: datetime) -> datetime | None:
        """The instant WARN_AT of the target has elapsed if the clock keeps running, on its calendar (预警时点): a
        clock resumed past it warns as it resumes. None while paused or stopped, like `due_at`."""
        utc(now, "now")
        if self.running_since is None:
            return None
        return self.calendar.add(self.running_since, max(self.target * WARN_AT - self.accumulated, ZERO))

    def _next_change(self, at: datetime, what: str) -> datetime:
        at = utc(at, "at")
        if self.stopped_at is not None:
            raise ValueError(f"cannot {what}: the clock stopped at {self.stopped_at.isoformat()}")
        last = self.running_since or self.paused_at
        if last is not None and at < last:
            raise ValueError(f"cannot {what} at {at.isoformat()}: before the clock's last change, {last.isoformat()}")
        return at

    def _close_segment(self, at: datetime) -> tuple[timedelta, datetime | None]:
        """Accumulated time and breach instant once the current running segment (if any) ends at `at`."""
        if self.running_since is None:
            return self.accumulated, self.breached_at
        accumulated = self.accumulated + self.calendar.elapsed(self.running_since, at)
        if self.breached_at is None and accumulated >= self.target:
            return accumulated, self.calendar.add(self.running_since, self.target - self.accumulated)
        return accumulated, self.breached_at


PRIORITIES = ("critical", "high", "medium", "low")
KEY_ACCOUNT = "key_account"
STANDARD = "standard"
TIERS = (KEY_ACCOUNT, STANDARD)
ANY_CATEGORY = "*"


@dataclass(frozen=True)
class SlaPolicy:
    """The targets for one category × priority × tier. `category` "*" matches any category; `calendar` names the
    calendar both clocks count on (DEFAULT_CALENDARS, or the service's own with holidays loaded)."""

    category: str
    priority: str
    tier: str
    first_response: timedelta
    resolution: timedelta
    calendar: str

    def __post_init__(self) -> None:
        if not self.category:
            raise ValueError('a policy needs a category, or "*" for any')
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown priority {self.priority!r}; known: {', '.join(PRIORITIES)}")
        if self.tier not in TIERS:
            raise ValueError(f"unknown tier {self.tier!r}; known: {', '.join(TIERS)}")
        if self.first_response <= ZERO or self.resolution <= ZERO:
            raise ValueError("SLA targets must be positive")

    @property
    def id(self) -> str:
        """Names the policy on the ticket (slaPolicyId): one policy per category × priority × tier."""
        return f"{self.category}:{self.priority}:{self.tier}"


def pick_policy(policies: Iterable[SlaPolicy], category: str, priority: str, key_account: bool) -> SlaPolicy:
    """The most specific policy for a ticket: an exact category beats "*"; then, for a key account, the green
    channel beats the standard tier. A standard customer never gets a key-account policy. LookupError when none
    matches; ValueError for an unknown priority or when two policies tie (the table is ambiguous)."""
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}; known: {', '.join(PRIORITIES)}")
    tiers = TIERS if key_account else (STANDARD,)
    ranked = [
        ((policy.category == category, policy.tier == KEY_ACCOUNT), policy)
        for policy in policies
        if policy.priority == priority and policy.category in (category, ANY_CATEGORY) and policy.tier in tiers
    ]
    if not ranked:
        raise LookupError(f"no SLA policy for category {category!r}, priority {priority}, tier {tiers[0]}")
    best = max(rank for rank, _ in ranked)
    winners = [policy for rank, policy in ranked if rank == best]
    if len(winners) > 1:
        raise ValueError(f"{len(winners)} SLA policies tie for category {category!r}, priority {priority}")
    return winners[0]


_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_24X7 = TWENTY_FOUR_SEVEN.name
_BH = BUSINESS_HOURS.name

_DEFAULT_TARGETS = (
    # category, priority, calendar, standard (first response, resolution), key account (first response, resolution)
    ("network_coverage", "critical", _24X7, (15 * _MINUTE, 4 * _HOUR), (10 * _MINUTE, 2 * _HOUR)),
    ("network_coverage", "high", _24X7, (30 * _MINUTE, 8 * _HOUR), (15 * _MINUTE, 4 * _HOUR)),
    ("network_coverage", "medium", _24X7, (2 * _HOUR, 48 * _HOUR), (1 * _HOUR, 24 * _HOUR)),
    ("network_coverage", "low", _24X7, (4 * _HOUR, 120 * _HOUR), (2 * _HOUR, 72 * _HOUR)),
    ("broadband_fault", "critical", _24X7, (15 * _MINUTE, 4 * _HOUR), (10 * _MINUTE, 2 * _HOUR)),
    ("broadband_fault", "high", _24X7, (30 * _MINUTE, 8 * _HOUR), (15 * _MINUTE, 4 * _HOUR)),
    ("broadband_fault", "medium", _24X7, (2 * _HOUR, 24 * _HOUR), (1 * _HOUR, 12 * _HOUR)),
    ("broadband_fault", "low", _24X7, (4 * _HOUR, 48 * _HOUR), (2 * _HOUR, 24 * _HOUR)),
    ("billing_dispute", "critical", _24X7, (30 * _MINUTE, 4 * _HOUR), (15 * _MINUTE, 2 * _HOUR)),
    ("billing_dispute", "high", _BH, (1 * _HOUR, 1 * BUSINESS_DAY), (30 * _MINUTE, 4 * _HOUR)),
    ("billing_dispute", "medium", _BH, (2 * _HOUR, 2 * BUSINESS_DAY), (1 * _HOUR, 1 * BUSINESS_DAY)),
    ("billing_dispute", "low", _BH, (4 * _HOUR, 5 * BUSINESS_DAY), (2 * _HOUR, 2 * BUSINESS_DAY)),
    (ANY_CATEGORY, "critical", _24X7, (30 * _MINUTE, 8 * _HOUR), (15 * _MINUTE, 4 * _HOUR)),
    (ANY_CATEGORY, "high", _BH, (2 * _HOUR, 2 * BUSINESS_DAY), (1 * _HOUR, 1 * BUSINESS_DAY)),
    (ANY_CATEGORY, "medium", _BH, (4 * _HOUR, 5 * BUSINESS_DAY), (2 * _HOUR, 2 * BUSINESS_DAY)),
    (ANY_CATEGORY, "low", _BH, (1 * BUSINESS_DAY, 10 * BUSINESS_DAY), (4 * _HOUR, 5 * BUSINESS_DAY)),
)

DEFAULT_POLICIES = tuple(
    SlaPolicy(category, priority, tier, first_response, resolution, calendar)
    for category, priority, calendar, standard, key_account in _DEFAULT_TARGETS
    for tier, (first_response, resolution) in ((STANDARD, standard), (KEY_ACCOUNT, key_account))
)
"""Plausible starting targets, to be tuned per province; not a statement of any regulation. MIIT's complaint
handling rules expect an operator to answer a complaint within a bounded time, and operators publish service
promises (服务承诺) such as repairing a broadband fault within a day in cities; these sit inside such promises.
- network_coverage (网络覆盖: no or weak signal) and broadband_fault (宽带故障) are 障碍申告 and count 7×24, because
  the NOC and the field crews do; a medium broadband fault is repaired within 24 h, the usual city promise;
- billing_dispute (计费/扣费争议) is back-office work on business hours, except critical (e.g. a line wrongly
  suspended, 误停机), which cannot wait for Monday;
- "*" covers every other category (业务开通, 终端, 增值业务, 携号转网, 服务态度), critical ones again 7×24;
- key accounts (绿色通道) get roughly half of each target.
Business days are BUSINESS_DAY (9 business hours) of BUSINESS_HOURS."""
