"""Rate limits and quotas: token-bucket arithmetic on an injected clock, and buckets shared in a real Redis
(`CRM_TEST_REDIS_URL`, default the local one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY

from crm_gateway.domain.limits import (
    QUOTA_POLICY,
    Decision,
    LimitSettings,
    RateLimiter,
    RoutePolicy,
    too_many_requests,
)
from crm_kit.broker import free_port
from crm_kit.observability import service_metrics
from crm_kit.service import instrument
from crm_kit.settings import AppSettings
from crm_kit.testing import assert_problem, serve

REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHANGHAI = ZoneInfo("Asia/Shanghai")
CUSTOMERS = "/api/v1/customers"
MORNING = datetime(2026, 11, 20, 9, 30, tzinfo=SHANGHAI).timestamp()


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self, now: float = MORNING) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: ManualClock, **settings: object) -> RateLimiter:
    options: dict[str, object] = {"default_rate_per_second": 2.0, "default_burst": 4} | settings
    return RateLimiter.from_settings(LimitSettings(**options), clock)


async def admitted(limiter: RateLimiter, client: str, times: int, method: str = "GET", path: str = CUSTOMERS) -> int:
    return sum([(await limiter.check(client, method, path)).allowed for _ in range(times)])


def seconds_to_midnight_in_shanghai(now: float) -> float:
    moment = datetime.fromtimestamp(now, SHANGHAI)
    midnight = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), SHANGHAI)
    return midnight.timestamp() - now


async def test_a_full_bucket_admits_the_burst_then_refuses_until_a_token_is_back() -> None:
    limits = limiter(ManualClock())
    decisions = [await limits.check("agent-1", "GET", CUSTOMERS) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True] * 4
    assert [d.remaining for d in decisions] == [3, 2, 1, 0]
    assert decisions[0].headers == {"RateLimit-Limit": "4", "RateLimit-Remaining": "3", "RateLimit-Reset": "1"}
    refused = await limits.check("agent-1", "GET", CUSTOMERS)
    assert not refused.allowed
    assert refused.retry_after_seconds == 0.5  # one token at 2 per second
    assert refused.reset_seconds == 2.0  # four tokens to fill
    assert refused.headers == {
        "RateLimit-Limit": "4",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "2",
        "Retry-After": "1",
    }


async def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = ManualClock()
    limits = limiter(clock)
    assert await admitted(limits, "agent-1", 4) == 4
    clock.advance(0.25)
    refused = await limits.check("agent-1", "GET", CUSTOMERS)
    assert (refused.allowed, refused.retry_after_seconds) == (False, 0.25)  # half a token there, half to come
    clock.advance(0.25)
    assert await admitted(limits, "agent-1", 2) == 1
    clock.advance(3600)
    assert await admitted(limits, "agent-1", 10) == 4


async def test_each_client_has_its_own_bucket() -> None:
    limits = limiter(ManualClock())
    assert await admitted(limits, "agent-1", 6) == 4
    assert await admitted(limits, "agent-2", 6) == 4


@pytest.mark.parametrize(
    ("method", "path", "policy"),
    [
        ("GET", CUSTOMERS, "default"),
        ("POST", CUSTOMERS, "writes"),
        ("PATCH", "/tmf-api/customerManagement/v4/customer/C1", "writes"),
        ("DELETE", "/api/v1/segments/S1", "writes"),
        ("POST", "/boss/v1/events", "boss-events"),
        ("POST", "/boss/v1/eventsx", "writes"),
        ("GET", "/boss/v1/events", "default"),
    ],
)
def test_the_first_route_policy_that_matches_applies(method: str, path: str, policy: str) -> None:
    assert LimitSettings().policy_for(method, path).name == policy


def test_by_default_writes_are_tighter_than_reads_and_boss_pushes_generous() -> None:
    settings = LimitSettings()
    reads = settings.policy_for("GET", CUSTOMERS)
    writes = settings.policy_for("POST", CUSTOMERS)
    boss = settings.policy_for("POST", "/boss/v1/events")
    assert writes.rate_per_second < reads.rate_per_second < boss.rate_per_second
    assert writes.burst < reads.burst < boss.burst


async def test_a_route_override_has_its_own_bucket_beside_the_default() -> None:
    writes = RoutePolicy(name="writes", methods=frozenset({"POST"}), rate_per_second=1, burst=2)
    limits = limiter(ManualClock(), routes=[writes])
    assert await admitted(limits, "agent-1", 5, method="POST") == 2
    refused = await limits.check("agent-1", "POST", CUSTOMERS)
    assert (refused.policy, refused.limit, refused.retry_after_seconds) == ("writes", 2, 1.0)
    assert await admitted(limits, "agent-1", 5, method="GET") == 4  # reads still have theirs


async def test_a_daily_quota_runs_out_and_comes_back_at_midnight_in_shanghai() -> None:
    clock = ManualClock()
    limits = limiter(clock, default_burst=100, daily_quota_by_role={"partner": 3})
    for remaining in (2, 1, 0):
        decision = await limits.check("dealer-7", "GET", CUSTOMERS, roles=["partner"])
        assert (decision.allowed, decision.policy, decision.remaining) == (True, QUOTA_POLICY, remaining)
    refused = await limits.check("dealer-7", "GET", CUSTOMERS, roles=["partner"])
    assert (refused.allowed, refused.policy, refused.limit) == (False, QUOTA_POLICY, 3)
    assert refused.retry_after_seconds == pytest.approx(seconds_to_midnight_in_shanghai(clock.now))
    assert refused.retry_after_seconds == pytest.approx(14.5 * 3600)  # from 09:30 Beijing time
    clock.advance(refused.retry_after_seconds - 1)
    assert not (await limits.check("dealer-7", "GET", CUSTOMERS, roles=["partner"])).allowed
    clock.advance(1)
    assert (await limits.check("dealer-7", "GET", CUSTOMERS, roles=["partner"])).allowed
    assert (await limits.check("agent-1", "GET", CUSTOMERS, roles=["agent"])).policy == "default"  # no quota


def test_a_clients_own_quota_wins_over_its_roles_and_the_smallest_role_quota_applies() -> None:
    settings = LimitSettings(daily_quota_by_client={"dealer-7": 50}, daily_quota_by_role={"partner": 10, "sms": 5})
    assert settings.quota_for("dealer-7", ["partner"]) == 50
    assert settings.quota_for("dealer-8", ["partner", "sms"]) == 5
    assert settings.quota_for("agent-1", ["agent"]) is None


async def test_a_request_refused_by_the_rate_does_not_count_against_the_quota() -> None:
    clock = ManualClock()
    limits = limiter(clock, default_burst=2, daily_quota_by_client={"dealer-7": 3})
    assert await admitted(limits, "dealer-7", 5) == 2
    clock.advance(1)
    decision = await limits.check("dealer-7", "GET", CUSTOMERS)
    assert (decision.allowed, decision.policy, decision.remaining) == (True, QUOTA_POLICY, 0)
    clock.advance(1)
    assert (await limits.check("dealer-7", "GET", CUSTOMERS)).policy == QUOTA_POLICY


async def test_the_memory_store_forgets_clients_whose_buckets_are_full_again() -> None:
    clock = ManualClock()
    limits = limiter(clock)
    for n in range(100):
        await limits.check(f"ip:10.0.0.{n}", "GET", CUSTOMERS)
    clock.advance(120)  # past the sweep; every bucket has long refilled
    await limits.check("agent-1", "GET", CUSTOMERS)
    assert list(limits.store._buckets) == ["crm:gateway:limits:{agent-1}:rate:default"]  # type: ignore[attr-defined]


def test_a_refusal_becomes_a_problem_429_with_the_headers() -> None:
    refused = Decision(False, "writes", 20, 0, 2.0, retry_after_seconds=0.1)
    response = too_many_requests(refused, CUSTOMERS)
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit-limit"] == "20"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == "2"


async def test_over_http_a_client_sees_the_limit_then_a_429_problem() -> None:
    """As the proxy will use it: check, refuse with `too_many_requests`, else pass the headers on."""
    limits = limiter(ManualClock(), default_burst=2)
    app = FastAPI()
    instrument(app, service_metrics("gw-limits-test"), AppSettings(log_json=False))

    @app.get("/{path:path}")
    async def handle(request: Request, path: str) -> Response:
        decision = await limits.check(request.headers["X-Client"], request.method, request.url.path)
        if not decision.allowed:
            return too_many_requests(decision, request.url.path)
        return Response("ok", headers=decision.headers)

    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        answers = [await http.get(CUSTOMERS, headers={"X-Client": "agent-1"}) for _ in range(3)]
    assert [r.status_code for r in answers[:2]] == [200, 200]
    assert answers[1].headers["RateLimit-Remaining"] == "0"
    body = assert_problem(answers[2], 429, slug="too-many-requests")
    assert body["instance"] == CUSTOMERS
    assert (body["policy"], body["retry_after_seconds"]) == ("default", 1)
    assert answers[2].headers["Retry-After"] == "1"


@pytest_asyncio.fixture
async def shared() -> AsyncIterator[LimitSettings]:
    """Settings for limiters sharing the real Redis under a prefix of this test's own, removed afterwards."""
    prefix = f"crm-test:limits:{uuid.uuid4().hex}:"
    yield LimitSettings(redis_url=REDIS_URL, key_prefix=prefix, default_rate_per_second=0.01, default_burst=5)
    async with aioredis.Redis.from_url(REDIS_URL) as redis:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)


@contextlib.asynccontextmanager
async def limiters(
    settings: LimitSettings, count: int, clock: ManualClock | None = None
) -> AsyncIterator[list[RateLimiter]]:
    """`count` limiters, as `count` gateway processes would have."""
    made = [RateLimiter.from_settings(settings, clock or time.time) for _ in range(count)]
    try:
        yield made
    finally:
        for limits in made:
            await limits.aclose()


async def test_two_gateways_on_one_redis_admit_the_burst_together(shared: LimitSettings) -> None:
    async with limiters(shared, 2) as (first, second):
        checks = [(first if n % 2 else second).check("agent-1", "GET", CUSTOMERS) for n in range(20)]
        decisions = await asyncio.gather(*checks)
    assert sum(d.allowed for d in decisions) == 5
    refused = next(d for d in decisions if not d.allowed)
    assert 99 < refused.retry_after_seconds <= 100  # a token every 100 s
    assert refused.headers["RateLimit-Limit"] == "5"


async def test_two_gateways_counting_in_memory_admit_the_burst_each() -> None:
    settings = LimitSettings(default_rate_per_second=0.01, default_burst=5)
    async with limiters(settings, 2) as (first, second):
        checks = [(first if n % 2 else second).check("agent-1", "GET", CUSTOMERS) for n in range(20)]
        decisions = await asyncio.gather(*checks)
    assert sum(d.allowed for d in decisions) == 10


async def test_two_gateways_share_a_clients_daily_quota(shared: LimitSettings) -> None:
    settings = shared.model_copy(update={"default_burst": 100, "daily_quota_by_role": {"partner": 3}})
    async with limiters(settings, 2) as (first, second), aioredis.Redis.from_url(REDIS_URL) as redis:
        decisions = [await (first, second)[n % 2].check("dealer-7", "GET", CUSTOMERS, ["partner"]) for n in range(6)]
        seconds, microseconds = await redis.time()
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 3
    refused = decisions[-1]
    assert refused.policy == QUOTA_POLICY
    assert refused.retry_after_seconds == pytest.approx(
        seconds_to_midnight_in_shanghai(seconds + microseconds / 1e6), abs=5
    )


async def test_the_shared_buckets_run_on_redis_time_not_the_gateways_clocks(shared: LimitSettings) -> None:
    """One gateway's clock a day and an hour ahead: the bucket and the day's quota are still the same."""
    settings = shared.model_copy(update={"daily_quota_by_client": {"dealer-7": 4}})
    ahead = ManualClock(time.time() + 25 * 3600)
    async with limiters(settings, 1) as (on_time,), limiters(settings, 1, ahead) as (skewed,):
        decisions = [await (on_time, skewed)[n % 2].check("dealer-7", "GET", CUSTOMERS) for n in range(8)]
    assert sum(d.allowed for d in decisions) == 4
    assert all(d.retry_after_seconds and d.retry_after_seconds < 86400 for d in decisions if not d.allowed)


async def test_shared_keys_expire_on_their_own(shared: LimitSettings) -> None:
    settings = shared.model_copy(update={"daily_quota_by_client": {"dealer-7": 100}})
    async with limiters(settings, 1) as (limits,), aioredis.Redis.from_url(REDIS_URL) as redis:
        await limits.check("dealer-7", "GET", CUSTOMERS)
        bucket_ttl = await redis.pttl(f"{shared.key_prefix}{{dealer-7}}:rate:default")
        quota_ttl = await redis.ttl(f"{shared.key_prefix}{{dealer-7}}:quota")
        seconds, _ = await redis.time()
    assert 0 < bucket_ttl <= 100_000 + 1000  # one token used, back in 100 s; a full bucket is no bucket
    assert 0 < quota_ttl <= seconds_to_midnight_in_shanghai(seconds) + 61


class RedisDoor:
    """A TCP relay in front of the real Redis that the test can shut and open again: Redis down, then back."""

    def __init__(self, target: httpx.URL) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self.target.path}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def shut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(self.target.host, self.target.port or 6379)
        self._writers |= {writer, redis_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, redis_writer), pipe(redis_reader, writer))


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_while_redis_is_unreachable_each_gateway_limits_in_memory(shared: LimitSettings) -> None:
    door = RedisDoor(httpx.URL(REDIS_URL))
    await door.open()
    clock = ManualClock(time.time())
    settings = shared.model_copy(update={"redis_url": door.url, "default_burst": 3})
    async with limiters(settings, 1, clock) as (limits,):
        assert (await limits.check("agent-1", "GET", CUSTOMERS)).remaining == 2  # in Redis
        errors = sample("crm_gateway_rate_limit_store_errors_total")
        await door.shut()
        assert await admitted(limits, "agent-1", 5) == 3  # a fresh bucket in memory, still limited
        assert sample("crm_gateway_rate_limit_store_errors_total") == errors + 1  # Redis left alone for a while
        assert sample("crm_gateway_rate_limit_store_degraded") == 1
        await door.open()
        clock.advance(shared.redis_retry_after_seconds)
        assert await admitted(limits, "agent-1", 5) == 2  # Redis's bucket again, where one token was taken
        assert sample("crm_gateway_rate_limit_store_degraded") == 0
    await door.shut()
