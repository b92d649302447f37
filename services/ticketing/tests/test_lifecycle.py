"""The ticket lifecycle: every move TMF621 status allows, every one it refuses (with the alternatives), the reopen
window and which states pause the SLA clock. The expected map is written out here, apart from the module's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm_ticketing.domain.lifecycle import (
    FINAL_STATES,
    OPEN_STATES,
    REOPEN_WINDOW,
    STATES,
    IllegalTransition,
    UnknownState,
    allowed,
    check_transition,
    pauses_clock,
)

EXPECTED = {
    "acknowledged": {"inProgress", "pending", "held", "resolved", "rejected", "cancelled"},
    "inProgress": {"pending", "held", "resolved", "cancelled"},
    "pending": {"inProgress", "held", "resolved", "cancelled"},
    "held": {"inProgress", "pending", "resolved", "cancelled"},
    "resolved": {"closed", "inProgress"},
    "closed": {"inProgress"},
    "rejected": set(),
    "cancelled": set(),
}
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
RECENTLY = NOW - timedelta(days=1)
LEGAL = [(a, b) for a, targets in EXPECTED.items() for b in sorted(targets)]
ILLEGAL = [(a, b) for a in EXPECTED for b in EXPECTED if b not in EXPECTED[a]]


def test_the_states_are_tmf621s_eight() -> None:
    assert set(STATES) == set(EXPECTED)
    assert len(STATES) == 8
    assert {"acknowledged", "inProgress", "pending", "held"} == OPEN_STATES
    assert {"rejected", "cancelled"} == FINAL_STATES


@pytest.mark.parametrize(("from_state", "to_state"), LEGAL)
def test_every_legal_move_passes(from_state: str, to_state: str) -> None:
    check_transition(from_state, to_state, resolved_at=RECENTLY, now=NOW)


@pytest.mark.parametrize(("from_state", "to_state"), ILLEGAL)
def test_every_illegal_move_is_refused_with_the_legal_alternatives(from_state: str, to_state: str) -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition(from_state, to_state, resolved_at=RECENTLY, now=NOW)
    assert refused.value.from_state == from_state
    assert refused.value.to_state == to_state
    assert isinstance(refused.value.allowed, tuple)
    assert set(refused.value.allowed) == EXPECTED[from_state]
    assert refused.value.reason
    assert str(refused.value) == refused.value.reason


def test_same_state_and_final_states_are_refused_with_a_reason() -> None:
    with pytest.raises(IllegalTransition, match="already inProgress") as same:
        check_transition("inProgress", "inProgress", resolved_at=None, now=NOW)
    assert same.value.allowed == ("pending", "held", "resolved", "cancelled")
    for final in ("rejected", "cancelled"):
        with pytest.raises(IllegalTransition, match="final") as out:
            check_transition(final, "inProgress", resolved_at=RECENTLY, now=NOW)
        assert out.value.allowed == ()


def test_allowed_lists_in_a_stable_order() -> None:
    for state, targets in EXPECTED.items():
        assert allowed(state) == tuple(s for s in STATES if s in targets)


def test_a_reopen_within_seven_days_passes_to_the_microsecond() -> None:
    assert timedelta(days=7) == REOPEN_WINDOW
    resolved_at = NOW - timedelta(days=7)
    for state in ("resolved", "closed"):
        check_transition(state, "inProgress", resolved_at=resolved_at, now=NOW)
        assert "inProgress" in allowed(state, resolved_at=resolved_at, now=NOW)


@pytest.mark.parametrize(("state", "left"), [("resolved", ("closed",)), ("closed", ())])
def test_a_reopen_after_seven_days_is_refused_with_the_reason(state: str, left: tuple[str, ...]) -> None:
    resolved_at = NOW - timedelta(days=7, microseconds=1)
    with pytest.raises(IllegalTransition, match="7 days") as refused:
        check_transition(state, "inProgress", resolved_at=resolved_at, now=NOW)
    assert refused.value.allowed == left
    assert (resolved_at + REOPEN_WINDOW).isoformat() in refused.value.reason
    assert allowed(state, resolved_at=resolved_at, now=NOW) == left
    assert allowed(state) == tuple(s for s in STATES if s in EXPECTED[state])


def test_an_old_resolution_still_closes() -> None:
    check_transition("resolved", "closed", resolved_at=NOW - timedelta(days=30), now=NOW)
    check_transition("resolved", "closed", resolved_at=None, now=NOW)


def test_the_reopen_window_is_measured_across_zones() -> None:
    resolved_at = datetime(2026, 11, 13, 18, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    check_transition("closed", "inProgress", resolved_at=resolved_at, now=datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    with pytest.raises(IllegalTransition):
        check_transition("closed", "inProgress", resolved_at=resolved_at, now=datetime(2026, 11, 20, 10, 1, tzinfo=UTC))


def test_a_reopen_needs_the_resolution_time() -> None:
    with pytest.raises(ValueError, match="resolution time"):
        check_transition("resolved", "inProgress", resolved_at=None, now=NOW)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_transition("acknowledged", "inProgress", resolved_at=None, now=datetime(2026, 11, 20, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        check_transition("closed", "inProgress", resolved_at=datetime(2026, 11, 19), now=NOW)


@pytest.mark.parametrize(
    "call",
    [
        lambda: check_transition("open", "inProgress", resolved_at=None, now=NOW),
        lambda: check_transition("acknowledged", "InProgress", resolved_at=None, now=NOW),
        lambda: allowed("done"),
        lambda: pauses_clock("waiting"),
    ],
)
def test_an_unknown_state_is_a_value_error_not_a_refused_move(call) -> None:
    with pytest.raises(UnknownState, match="unknown ticket state") as unknown:
        call()
    assert isinstance(unknown.value, ValueError)
    assert not isinstance(unknown.value, IllegalTransition)
    assert "acknowledged" in str(unknown.value)


@pytest.mark.parametrize("state", list(EXPECTED))
def test_only_pending_and_held_pause_the_clock(state: str) -> None:
    assert pauses_clock(state) is (state in {"pending", "held"})
