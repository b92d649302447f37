"""A ticket's life (TMF621 troubleTicket `status`) and which moves between states are allowed.

Glossary, as agents and customers say it:
- acknowledged 已受理: taken in, nobody working on it yet
- inProgress 处理中: someone is working on it
- pending 待客户反馈: waiting for the customer (a callback, a document, a test at home); the SLA clock pauses
- held 挂起: parked on purpose (a field visit booked, a supplier to answer); the SLA clock pauses
- resolved 已解决: fixed or answered, waiting for the customer to confirm or for the close
- closed 已关闭: done; still reopenable for REOPEN_WINDOW after the resolution
- rejected 已驳回: not ours to handle, or not a complaint; final
- cancelled 已撤销: withdrawn by the customer, or raised by mistake; final
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crm_ticketing.domain.sla import utc

ACKNOWLEDGED = "acknowledged"
IN_PROGRESS = "inProgress"
PENDING = "pending"
HELD = "held"
RESOLVED = "resolved"
CLOSED = "closed"
REJECTED = "rejected"
CANCELLED = "cancelled"

STATES = (ACKNOWLEDGED, IN_PROGRESS, PENDING, HELD, RESOLVED, CLOSED, REJECTED, CANCELLED)
"""Every status, in the order answers list them."""

_NEXT: dict[str, tuple[str, ...]] = {
    ACKNOWLEDGED: (IN_PROGRESS, PENDING, HELD, RESOLVED, REJECTED, CANCELLED),
    IN_PROGRESS: (PENDING, HELD, RESOLVED, CANCELLED),
    PENDING: (IN_PROGRESS, HELD, RESOLVED, CANCELLED),
    HELD: (IN_PROGRESS, PENDING, RESOLVED, CANCELLED),
    RESOLVED: (IN_PROGRESS, CLOSED),
    CLOSED: (IN_PROGRESS,),
    REJECTED: (),
    CANCELLED: (),
}
"""Where each state may go, each tuple in STATES order. resolved/closed → inProgress is the reopen (重新打开)."""

OPEN_STATES = frozenset({ACKNOWLEDGED, IN_PROGRESS, PENDING, HELD})
"""Still to be worked: these count in queues and backlogs."""
FINAL_STATES = frozenset(state for state, targets in _NEXT.items() if not targets)
"""No way out: rejected and cancelled. closed is not final, it can be reopened within REOPEN_WINDOW."""
PAUSING_STATES = frozenset({PENDING, HELD})
"""The ball is not in our court: the SLA clock stops counting while the ticket sits here."""

REOPEN_WINDOW = timedelta(days=7)
"""How long after the resolution the customer may still say "not fixed" and have the same ticket reopened;
later it is a new ticket."""
_REOPENABLE = (RESOLVED, CLOSED)


class UnknownState(ValueError):
    """A status name that is not one of STATES: a caller's mistake, not a refused move."""

    def __init__(self, state: str) -> None:
        super().__init__(f"unknown ticket state {state!r}; known states: {', '.join(STATES)}")
        self.state = state


class IllegalTransition(Exception):
    """A move the lifecycle refuses; `allowed` lists where the ticket may go instead (the API answers 409)."""

    def __init__(self, from_state: str, to_state: str, allowed: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.from_state = from_state
        self.to_state = to_state
        self.allowed = allowed
        self.reason = reason


def _known(state: str) -> str:
    if state not in _NEXT:
        raise UnknownState(state)
    return state


def _reopen_deadline(resolved_at: datetime | None) -> datetime:
    if resolved_at is None:
        raise ValueError("a resolved or closed ticket needs its resolution time to decide on a reopen")
    return utc(resolved_at, "resolved_at") + REOPEN_WINDOW


def allowed(state: str, *, resolved_at: datetime | None = None, now: datetime | None = None) -> tuple[str, ...]:
    """The states `state` may move to, in STATES order. Without `now` that is the lifecycle's map; with `now`, a
    reopen whose window (REOPEN_WINDOW after `resolved_at`) has passed is left out, so the answer is what
    check_transition would accept at that instant."""
    targets = _NEXT[_known(state)]
    if now is None or state not in _REOPENABLE:
        return targets
    if utc(now, "now") <= _reopen_deadline(resolved_at):
        return targets
    return tuple(target for target in targets if target != IN_PROGRESS)


def check_transition(from_state: str, to_state: str, *, resolved_at: datetime | None, now: datetime) -> None:
    """Returns when the move is allowed at `now`, raises IllegalTransition otherwise (UnknownState for a name that
    is not a status). `resolved_at` is the ticket's resolution time; only a reopen, or listing the alternatives to a
    refused move out of resolved/closed, reads it. Staying in the same state is not a move: it is refused, so a
    repeated request cannot pass for a change."""
    _known(from_state)
    _known(to_state)
    utc(now, "now")
    legal = to_state in _NEXT[from_state]
    if legal and not is_reopen(from_state, to_state):
        return
    targets = allowed(from_state, resolved_at=resolved_at, now=now)
    if to_state in targets:
        return
    if from_state in FINAL_STATES:
        reason = f"a {from_state} ticket is final, it cannot move"
    elif to_state == from_state:
        reason = f"the ticket is already {from_state}"
    elif not legal:
        reason = f"a {from_state} ticket cannot move to {to_state}"
    else:
        reason = (
            f"a ticket can be reopened only within {REOPEN_WINDOW.days} days of its resolution; "
            f"that window closed at {_reopen_deadline(resolved_at).isoformat()}"
        )
    raise IllegalTransition(from_state, to_state, targets, reason)


def is_reopen(from_state: str, to_state: str) -> bool:
    """resolved/closed → inProgress: the customer says it is not fixed (重新打开)."""
    return from_state in _REOPENABLE and to_state == IN_PROGRESS


def pauses_clock(state: str) -> bool:
    """True for pending (待客户反馈) and held (挂起): entering them pauses the SLA clock, leaving them resumes it."""
    return _known(state) in PAUSING_STATES
