"""Rate limits and daily quotas per client: token buckets per (client, route policy), counted in this process or in
Redis when the gateway runs as several replicas.

The proxy builds one `RateLimiter` at startup (`RateLimiter.from_settings`), asks `check(client, method, path, roles)`
before forwarding, answers `too_many_requests(decision, path)` when it is refused, and otherwise copies
`decision.headers` onto the upstream's answer. `aclose()` at shutdown.

Daily quotas count per calendar day in Asia/Shanghai (midnight Beijing time resets them), not over a rolling 24 hours:
partner contracts and the operator's reports speak of requests per day, a client can read when its quota comes back,
and a day needs one counter where a rolling window needs a log of every request. China Standard Time is UTC+8 all
year (no daylight saving since 1991), so the day is plain arithmetic on epoch seconds, the same in Python and in Lua.

When Redis is configured but cannot be reached, the limiter falls back to counting in this process (with a warning,
`crm_gateway_rate_limit_store_errors_total` and `crm_gateway_rate_limit_store_degraded` = 1) and tries Redis again a
few seconds later. Failing open would drop every limit exactly when something is already wrong, and failing closed
would make Redis a dependency of every request; in memory each replica still holds its clients to the per-process
rate, so the whole gateway admits at most its replica count times the limit until Redis is back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field, field_validator
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from crm_kit.errors import CrmError, problem
from crm_kit.presentation import JSONResponse

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Epoch seconds: quotas follow the calendar, so a monotonic clock will not do."""

SHANGHAI_UTC_OFFSET_SECONDS = 8 * 3600
DAY_SECONDS = 86400
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
QUOTA_POLICY = "daily-quota"

RATE_LIMITED = Counter("crm_gateway_rate_limited_total", "Requests refused with 429", ["policy"])
STORE_ERRORS = Counter(
    "crm_gateway_rate_limit_store_errors_total", "Rate-limit checks that could not reach Redis and counted in memory"
)
STORE_DEGRADED = Gauge(
    "crm_gateway_rate_limit_store_degraded", "1 while rate limits are counted in this process because Redis is down"
)


class RoutePolicy(BaseModel):
    """A token bucket for the requests of one client that match a path prefix (and methods)."""

    name: str
    prefix: str = "/"
    """Whole path segments: `/boss/v1/events` covers `/boss/v1/events/x`, not `/boss/v1/eventsx`."""
    methods: frozenset[str] = frozenset()
    """Empty: every method."""
    rate_per_second: float = Field(gt=0)
    burst: int = Field(ge=1)
    """How many requests a client may send at once after a quiet spell; also the bucket's size."""

    @field_validator("methods")
    @classmethod
    def _upper_case(cls, methods: frozenset[str]) -> frozenset[str]:
        return frozenset(m.upper() for m in methods)

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        base = self.prefix.rstrip("/")
        return path == base or path.startswith(base + "/")


def _default_routes() -> list[RoutePolicy]:
    return [
        RoutePolicy(name="token", prefix="/oauth2/token", rate_per_second=1, burst=10),
        RoutePolicy(
            name="boss-events", prefix="/boss/v1/events", methods=frozenset({"POST"}), rate_per_second=100, burst=200
        ),
        RoutePolicy(name="writes", methods=WRITE_METHODS, rate_per_second=10, burst=20),
    ]


class LimitSettings(BaseModel):
    """Rate limits and quotas; nested in the gateway's settings."""

    redis_url: str | None = None
    """`redis://host:6379/0` to share the buckets between gateway replicas; none: each process counts alone."""
    redis_timeout_seconds: float = 0.25
    """Connect and command timeout: a slow Redis must not slow every request, the limiter falls back instead."""
    redis_retry_after_seconds: float = 5.0
    """After Redis failed, count in memory this long before trying it again."""
    key_prefix: str = "crm:gateway:limits:"
    default_rate_per_second: float = Field(50.0, gt=0)
    default_burst: int = Field(100, ge=1)
    routes: list[RoutePolicy] = Field(default_factory=_default_routes)
    """Tried in order, the first that matches applies; none: the default rate. The token endpoint is counted per
    caller address (a password guesser has no client id yet), everything else per authenticated client."""
    daily_quota_by_client: dict[str, int] = Field(default_factory=dict)
    """Requests per Shanghai calendar day for a client id; wins over its roles' quotas."""
    daily_quota_by_role: dict[str, int] = Field(default_factory=lambda: {"partner": 100_000})
    """Requests per day for clients with a role; a client with several such roles gets the smallest."""

    def policy_for(self, method: str, path: str) -> RoutePolicy:
        matching = next((p for p in self.routes if p.matches(method, path)), None)
        return matching or RoutePolicy(
            name="default", rate_per_second=self.default_rate_per_second, burst=self.default_burst
        )

    def quota_for(self, client: str, roles: Collection[str] = ()) -> int | None:
        if client in self.daily_quota_by_client:
            return self.daily_quota_by_client[client]
        quotas = [self.daily_quota_by_role[r] for r in roles if r in self.daily_quota_by_role]
        return min(quotas) if quotas else None


def shanghai_day(now: float) -> int:
    return int((now + SHANGHAI_UTC_OFFSET_SECONDS) // DAY_SECONDS)


def seconds_to_shanghai_midnight(now: float) -> float:
    return DAY_SECONDS - (now + SHANGHAI_UTC_OFFSET_SECONDS) % DAY_SECONDS


@dataclass(frozen=True)
class Outcome:
    """What a store did with one request: the numbers, before they become a `Decision`."""

    refused_by: Literal["rate", "quota"] | None
    tokens: float
    """Left in the bucket after this request (or, refused, at the time of asking)."""
    quota_used: int
    """Today's count for the client, this request included when admitted."""
    now: float
    """The store's clock: Redis time for the Redis store."""


@dataclass(frozen=True)
class Decision:
    """The answer to one check, reporting the limit that refused it or, admitted, the one closest to running out."""

    allowed: bool
    policy: str
    limit: int
    remaining: int
    reset_seconds: float
    """Until the reported limit is whole again: the bucket full, or the quota's day over."""
    retry_after_seconds: float | None = None
    """Refused only: until a request would be admitted."""

    @property
    def headers(self) -> dict[str, str]:
        """`Retry-After` on a refusal and the IETF draft's `RateLimit-*` (delta seconds, rounded up)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_seconds)),
        }
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_seconds)))
        return headers


def decide(policy: RoutePolicy, quota: int | None, outcome: Outcome) -> Decision:
    rate = Decision(
        allowed=outcome.refused_by is None,
        policy=policy.name,
        limit=policy.burst,
        remaining=math.floor(outcome.tokens),
        reset_seconds=(policy.burst - outcome.tokens) / policy.rate_per_second,
    )
    if outcome.refused_by == "rate":
        return _refused(rate, (1 - outcome.tokens) / policy.rate_per_second)
    if quota is None:
        return rate
    daily = Decision(
        allowed=rate.allowed,
        policy=QUOTA_POLICY,
        limit=quota,
        remaining=max(0, quota - outcome.quota_used),
        reset_seconds=seconds_to_shanghai_midnight(outcome.now),
    )
    if outcome.refused_by == "quota":
        return _refused(daily, daily.reset_seconds)
    return daily if daily.remaining < rate.remaining else rate


def _refused(decision: Decision, retry_after: float) -> Decision:
    return Decision(False, decision.policy, decision.limit, decision.remaining, decision.reset_seconds, retry_after)


class TooManyRequests(CrmError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, decision: Decision) -> None:
        retry_after = decision.headers["Retry-After"]
        what = "daily quota" if decision.policy == QUOTA_POLICY else f"rate limit ({decision.policy})"
        super().__init__(
            f"The {what} of {decision.limit} requests is used up; retry in {retry_after} s",
            policy=decision.policy,
            retry_after_seconds=int(retry_after),
        )
        self.headers = decision.headers  # type: ignore[misc]


def too_many_requests(decision: Decision, instance: str | None = None) -> JSONResponse:
    """The problem+json 429 for a refused check, with `Retry-After` and the `RateLimit-*` headers."""
    error = TooManyRequests(decision)
    return problem(error.status, error.slug, error.title, error.detail, instance, headers=error.headers, **error.extra)


class LimitStore(Protocol):
    async def take(self, bucket_key: str, policy: RoutePolicy, quota_key: str, quota: int | None) -> Outcome:
        """Take one token from the bucket and one request from the day's quota, both or neither."""

    async def aclose(self) -> None: ...


class MemoryStore:
    """Buckets in this process: right for one gateway process, and the fallback when Redis is down."""

    SWEEP_EVERY_SECONDS = 60.0

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float, float]] = {}
        """key → (tokens, when counted, when full again): a full bucket is the same as none, and is swept."""
        self._counts: dict[str, tuple[int, int]] = {}
        """key → (Shanghai day, requests that day)."""
        self._next_sweep = clock() + self.SWEEP_EVERY_SECONDS

    async def take(self, bucket_key: str, policy: RoutePolicy, quota_key: str, quota: int | None) -> Outcome:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        tokens, counted_at, _ = self._buckets.get(bucket_key, (policy.burst, now, now))
        tokens = min(policy.burst, tokens + max(0.0, now - counted_at) * policy.rate_per_second)
        day = shanghai_day(now)
        counted_day, used = self._counts.get(quota_key, (day, 0))
        if counted_day != day:
            used = 0
        if tokens < 1:
            return Outcome("rate", tokens, used, now)
        if quota is not None and used >= quota:
            return Outcome("quota", tokens, used, now)
        tokens -= 1
        self._buckets[bucket_key] = (tokens, now, now + (policy.burst - tokens) / policy.rate_per_second)
        if quota is not None:
            used += 1
            self._counts[quota_key] = (day, used)
        return Outcome(None, tokens, used, now)

    def _sweep(self, now: float) -> None:
        """Forget what no longer limits anyone, so a stream of one-off clients does not grow the process."""
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        today = shanghai_day(now)
        self._counts = {k: v for k, v in self._counts.items() if v[0] == today}
        self._next_sweep = now + self.SWEEP_EVERY_SECONDS

    async def aclose(self) -> None:
        return None


TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, burst, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if saved[1] then
  tokens = math.min(burst, tonumber(saved[1]) + math.max(0, now - tonumber(saved[2])) * rate)
end
local day = math.floor((now + 28800) / 86400)
local used = 0
if quota >= 0 then
  local counted = redis.call('HMGET', KEYS[2], 'day', 'used')
  if tonumber(counted[1]) == day then used = tonumber(counted[2]) end
end
local refused = ''
if tokens < 1 then
  refused = 'rate'
elseif quota >= 0 and used >= quota then
  refused = 'quota'
else
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
  if quota >= 0 then
    used = used + 1
    redis.call('HSET', KEYS[2], 'day', day, 'used', used)
    redis.call('EXPIREAT', KEYS[2], (day + 1) * 86400 - 28800 + 60)
  end
end
return {refused, string.format('%.6f', tokens), used, string.format('%.6f', now)}
"""
"""The memory store's arithmetic, atomic in Redis and on Redis's clock, so replicas whose clocks disagree still
share one bucket. A bucket expires once it would be full again (a missing bucket is a full one); a day's count
expires a minute after Shanghai midnight. ARGV[3] is the quota, -1 for none (28800 s is UTC+8)."""


REFUSALS: dict[str, Literal["rate", "quota"]] = {"rate": "rate", "quota": "quota"}


class RedisStore:
    """Buckets shared by every gateway replica; counts in memory (`fallback`) while Redis cannot be reached."""

    def __init__(self, url: str, settings: LimitSettings, fallback: MemoryStore, clock: Clock = time.time) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            retry=Retry(NoBackoff(), 1),  # once, for a pooled connection Redis closed; then the fallback
            decode_responses=True,
        )
        self._script = self._redis.register_script(TAKE_SCRIPT)
        self._fallback = fallback
        self._clock = clock
        self._retry_after = settings.redis_retry_after_seconds
        self._down_until: float | None = None

    async def take(self, bucket_key: str, policy: RoutePolicy, quota_key: str, quota: int | None) -> Outcome:
        if self._down_until is not None and self._clock() < self._down_until:
            return await self._fallback.take(bucket_key, policy, quota_key, quota)
        args = [policy.rate_per_second, policy.burst, -1 if quota is None else quota]
        try:
            refused, tokens, used, now = await self._script(keys=[bucket_key, quota_key], args=args)
        except (RedisError, OSError) as exc:
            STORE_ERRORS.inc()
            if self._down_until is None:
                log.warning("rate limits counted in this process: Redis is unreachable (%s)", exc)
                STORE_DEGRADED.set(1)
            self._down_until = self._clock() + self._retry_after
            return await self._fallback.take(bucket_key, policy, quota_key, quota)
        if self._down_until is not None:
            log.info("rate limits shared in Redis again")
            STORE_DEGRADED.set(0)
            self._down_until = None
        return Outcome(REFUSALS.get(refused), float(tokens), int(used), float(now))

    async def aclose(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """Which bucket and quota a request counts against, and the answer for the proxy."""

    def __init__(self, settings: LimitSettings, store: LimitStore) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def from_settings(cls, settings: LimitSettings, clock: Clock = time.time) -> RateLimiter:
        memory = MemoryStore(clock)
        store: LimitStore = RedisStore(settings.redis_url, settings, memory, clock) if settings.redis_url else memory
        return cls(settings, store)

    async def check(self, client: str, method: str, path: str, roles: Collection[str] = ()) -> Decision:
        """Count one request of `client` (an authenticated client id, or `ip:<address>` for anonymous callers)."""
        policy = self.settings.policy_for(method, path)
        quota = self.settings.quota_for(client, roles)
        # One hash tag per client: both keys land on the same Redis Cluster slot, as a script's keys must.
        base = f"{self.settings.key_prefix}{{{client}}}"
        outcome = await self.store.take(f"{base}:rate:{policy.name}", policy, f"{base}:quota", quota)
        decision = decide(policy, quota, outcome)
        if not decision.allowed:
            RATE_LIMITED.labels(decision.policy).inc()
        return decision

    async def aclose(self) -> None:
        await self.store.aclose()
