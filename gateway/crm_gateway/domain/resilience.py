"""Circuit breakers per upstream and retries of idempotent requests.

The proxy builds one `Resilience` at startup and sends each upstream request with
`await resilience.send(transport, request, route.upstream)`: it answers with the upstream's response (its body not
read yet), raises `CircuitOpen` (a 503 `upstream-unavailable` with
`Retry-After`) without trying while the upstream's circuit is open, and otherwise lets the last `httpx` error through.

A failure, for the breaker, is a transport error or timeout, or a 502/503/504: the upstream or the path to it is
unwell. Any other answer, 4xx and 500 included, is the upstream working (a 500 is one request's bug, not an outage).
A pool timeout is the gateway's own saturation and judges nobody.

Only idempotent requests with a body the gateway holds (not one streamed through) are sent again, only after a
connection error or a 502/503/504, only while the circuit stays closed, and only before the proxy has started
passing the response body on: the decision is made on the status line alone.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field

from crm_kit.errors import UpstreamUnavailable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
FAILING_STATUSES = frozenset({502, 503, 504})
CONNECTION_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
"""Refused, reset or closed without an answer. A read timeout is not among them: sending a slow request again
doubles the load on an upstream that is already slow."""


class State(enum.Enum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


CIRCUIT_STATE = Gauge("crm_gateway_circuit_state", "Circuit per upstream: 0 closed, 1 half-open, 2 open", ["upstream"])
CIRCUIT_TRANSITIONS = Counter(
    "crm_gateway_circuit_transitions_total", "Circuit state changes per upstream", ["upstream", "state"]
)
CIRCUIT_REJECTED = Counter(
    "crm_gateway_circuit_rejected_total", "Requests answered 503 at once because the circuit is open", ["upstream"]
)
RETRIES = Counter("crm_gateway_upstream_retries_total", "Requests sent again to an upstream", ["upstream", "reason"])


class BreakerSettings(BaseModel):
    consecutive_failures: int = Field(5, ge=1)
    """Opens after this many failures in a row."""
    failure_ratio: float = Field(0.5, gt=0, le=1)
    """Or when this share of the calls in the window failed,"""
    window_seconds: float = Field(30.0, gt=0)
    minimum_calls: int = Field(20, ge=1)
    """counted only once the window holds this many calls: two failures of three say little."""
    cool_down_seconds: float = Field(15.0, gt=0)
    """Open this long, then one trial request; also how long a trial may take before another is let through."""


class RetrySettings(BaseModel):
    attempts: int = Field(3, ge=1)
    """In all, the first included."""
    backoff_seconds: float = Field(0.05, ge=0)
    """Before the second attempt at most this, then doubling: each wait is drawn between 0 and its bound."""
    max_backoff_seconds: float = Field(1.0, ge=0)


class ResilienceSettings(BaseModel):
    """Circuit breakers and retries; nested in the gateway's settings."""

    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)


class CircuitOpen(UpstreamUnavailable):
    def __init__(self, upstream: str, retry_after_seconds: float) -> None:
        seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(
            f"The {upstream} service is failing; the gateway sends it no requests for {seconds} s",
            upstream=upstream,
            retry_after_seconds=seconds,
        )
        self.headers = {"Retry-After": str(seconds)}  # type: ignore[misc]


class CircuitBreaker:
    """One upstream's circuit, in this process. Every request the breaker lets through must end in `record`
    (or `release` if it ended without a verdict, e.g. cancelled), or a half-open circuit waits a cool-down for it."""

    def __init__(self, upstream: str, settings: BreakerSettings, clock: Clock = time.monotonic) -> None:
        self.upstream = upstream
        self.settings = settings
        self._clock = clock
        self.state = State.CLOSED
        self._consecutive_failures = 0
        self._window: deque[tuple[float, bool]] = deque()
        """(when, failed) of the calls within `window_seconds`, while closed."""
        self._window_failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None
        CIRCUIT_STATE.labels(upstream).set(State.CLOSED.value)

    def allow(self) -> bool:
        """May a request go to the upstream now? Half-open, only the one trial may."""
        now = self._clock()
        if self.state is State.OPEN:
            if now - self._opened_at < self.settings.cool_down_seconds:
                return False
            self._move(State.HALF_OPEN)
        if self.state is State.HALF_OPEN:
            started = self._trial_started
            if started is not None and now - started < self.settings.cool_down_seconds:
                return False  # the trial is under way; one that has run a whole cool-down is taken as lost
            self._trial_started = now
        return True

    def retry_after(self) -> float:
        """Seconds until the breaker lets a request through, as far as it knows now."""
        now = self._clock()
        if self.state is State.OPEN:
            return max(0.0, self._opened_at + self.settings.cool_down_seconds - now)
        if self.state is State.HALF_OPEN and self._trial_started is not None:
            return max(0.0, self._trial_started + self.settings.cool_down_seconds - now)
        return 0.0

    def record(self, *, failed: bool) -> None:
        now = self._clock()
        if self.state is State.HALF_OPEN:
            self._trial_started = None
            if failed:
                self._open(now)
            else:
                self._move(State.CLOSED)
            return
        if self.state is State.OPEN:  # a request let through before the circuit opened: the trial will judge
            return
        self._window.append((now, failed))
        self._window_failures += failed
        while self._window[0][0] <= now - self.settings.window_seconds:
            self._window_failures -= self._window.popleft()[1]
        self._consecutive_failures = self._consecutive_failures + 1 if failed else 0
        calls = len(self._window)
        too_many = self._consecutive_failures >= self.settings.consecutive_failures
        too_often = (
            calls >= self.settings.minimum_calls and self._window_failures >= self.settings.failure_ratio * calls
        )
        if too_many or too_often:
            self._open(now)

    def release(self) -> None:
        """A request let through ended without telling whether the upstream works: free the trial for another."""
        if self.state is State.HALF_OPEN:
            self._trial_started = None

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._move(State.OPEN)

    def _move(self, state: State) -> None:
        self.state = state
        self._consecutive_failures = 0
        self._window.clear()
        self._window_failures = 0
        CIRCUIT_STATE.labels(self.upstream).set(state.value)
        CIRCUIT_TRANSITIONS.labels(self.upstream, state.name.lower().replace("_", "-")).inc()


class Resilience:
    """The breakers of every upstream, and the one way the proxy sends to them."""

    def __init__(
        self, settings: ResilienceSettings, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, upstream: str) -> CircuitBreaker:
        if upstream not in self._breakers:
            self._breakers[upstream] = CircuitBreaker(upstream, self.settings.breaker, self._clock)
        return self._breakers[upstream]

    def backoff(self, attempt: int) -> float:
        """Before attempt `attempt + 1`: full jitter, so replicas retrying together do not arrive together."""
        retry = self.settings.retry
        return random.uniform(0, min(retry.max_backoff_seconds, retry.backoff_seconds * 2 ** (attempt - 1)))

    async def send(self, transport: httpx.AsyncBaseTransport, request: httpx.Request, upstream: str) -> httpx.Response:
        """The upstream's response with its body unread; the caller closes it. Sent on the transport, not through
        a client: a proxy wants no client-side cookies, redirects or default headers, and skips their cost."""
        breaker = self.breaker(upstream)
        replayable = request.method in IDEMPOTENT_METHODS and isinstance(request.stream, httpx.ByteStream)
        attempts = self.settings.retry.attempts if replayable else 1
        attempt = 0
        while True:
            attempt += 1
            if not breaker.allow():  # open before the first attempt, or opened by other requests while this waited
                CIRCUIT_REJECTED.labels(upstream).inc()
                raise CircuitOpen(upstream, breaker.retry_after())
            try:
                response = await transport.handle_async_request(request)
            except httpx.PoolTimeout:
                breaker.release()
                raise
            except httpx.TransportError as exc:
                breaker.record(failed=True)
                if not self._may_retry(attempt, attempts, breaker) or not isinstance(exc, CONNECTION_ERRORS):
                    raise
                reason = type(exc).__name__
            except BaseException:
                breaker.release()
                raise
            else:
                failed = response.status_code in FAILING_STATUSES
                breaker.record(failed=failed)
                if not failed or not self._may_retry(attempt, attempts, breaker):
                    return response
                await response.aclose()
                reason = str(response.status_code)
            RETRIES.labels(upstream, reason).inc()
            await self._sleep(self.backoff(attempt))

    @staticmethod
    def _may_retry(attempt: int, attempts: int, breaker: CircuitBreaker) -> bool:
        """Attempts left, and the circuit still closed after this one's failure was counted."""
        return attempt < attempts and breaker.state is State.CLOSED
