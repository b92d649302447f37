"""Rate limits and the circuit breaker as callers meet them through the gateway: 429 problem+json with Retry-After
per client, the token endpoint counted per address, two gateway processes holding one limit through Redis (each
alone would admit its own), and an upstream that keeps failing cut off with 503 until it has had time to recover."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_gateway.domain.limits import LimitSettings, RoutePolicy
from crm_gateway.domain.resilience import BreakerSettings, ResilienceSettings, RetrySettings
from crm_gateway.settings import Settings
from crm_kit.broker import free_port
from crm_kit.errors import PROBLEM_JSON
from crm_kit.testing import bearer, eventually, serve

from .conftest import echo_upstream, running_gateway

REDIS_URL = "redis://127.0.0.1:6379/0"
CUSTOMERS = "/api/v1/customers"


def tight(burst: int, **changes: Any) -> LimitSettings:
    """A limit that refills too slowly to matter within a test: exactly `burst` requests pass."""
    return LimitSettings(default_rate_per_second=0.001, default_burst=burst, routes=[], **changes)


def assert_429(r: httpx.Response, policy: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["policy"] == policy
    assert r.headers["RateLimit-Remaining"] == "0"


async def test_a_client_over_its_limit_gets_429_and_another_client_does_not() -> None:
    async with running_gateway(limits=tight(3)) as gw:
        alice, bob = bearer("alice", roles=("agent",)), bearer("bob", roles=("agent",))
        answers = [await gw.http.get(f"{CUSTOMERS}/C1", headers=alice) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert [r.headers["RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
        assert answers[0].headers["RateLimit-Limit"] == "3"
        assert_429(await gw.http.get(f"{CUSTOMERS}/C1", headers=alice), "default")
        assert (await gw.http.get(f"{CUSTOMERS}/C1", headers=bob)).status_code == 200, "bob has his own bucket"
        assert (await gw.http.get(f"{CUSTOMERS}/C1/360", headers=alice)).status_code == 429, "the 360 view counts too"


async def test_a_route_policy_and_a_partners_daily_quota_hold_at_the_gateway() -> None:
    writes = RoutePolicy(name="writes", methods=frozenset({"POST"}), rate_per_second=0.001, burst=1)
    limits = LimitSettings(routes=[writes], daily_quota_by_role={"partner": 4})
    async with running_gateway(limits=limits) as gw:
        agent = bearer("agent-1", roles=("agent",))
        assert (await gw.http.post(f"{CUSTOMERS}/C1/notes", headers=agent, json={})).status_code == 200
        assert_429(await gw.http.post(f"{CUSTOMERS}/C1/notes", headers=agent, json={}), "writes")
        assert (await gw.http.get(f"{CUSTOMERS}/C1", headers=agent)).status_code == 200, "reads have their own bucket"

        partner = bearer("partner-app", roles=("partner",), partner_id="P-001")
        assert [(await gw.http.get(f"{CUSTOMERS}/C{n}", headers=partner)).status_code for n in range(4)] == [200] * 4
        assert_429(await gw.http.get(f"{CUSTOMERS}/C9", headers=partner), "daily-quota")


async def test_the_token_endpoint_is_limited_per_address_before_any_password_is_checked() -> None:
    token = RoutePolicy(name="token", prefix="/oauth2/token", rate_per_second=0.001, burst=2)
    async with running_gateway(limits=LimitSettings(routes=[token])) as gw:
        guesses = [await gw.token(grant_type="password", username="admin", password=f"guess-{n}") for n in range(2)]
        assert [r.status_code for r in guesses] == [400, 400], "wrong passwords: invalid_grant"
        assert_429(await gw.token(grant_type="password", username="admin", password="guess-3"), "token")


@contextlib.contextmanager
def gateway_process(upstream: str, database: str, **env: str) -> Iterator[str]:
    """A gateway in a process of its own, as a replica runs: uvicorn on a port of its own."""
    port = free_port()
    settings = {
        "CRM_GATEWAY_DATABASE_URL": database,
        "CRM_GATEWAY_LOG_JSON": "false",
        "CRM_GATEWAY_PASSWORD_MEMORY_KIB": "8192",
        **{f"CRM_GATEWAY_{name}_URL": upstream for name in ("CUSTOMER", "BILLING_ADAPTER", "TICKETING", "CHURN")},
        "CRM_GATEWAY_CAMPAIGN_URL": upstream,
        **env,
    }
    command = [sys.executable, "-m", "uvicorn", "crm_gateway.app:create_app", "--factory", "--port", str(port)]
    process = subprocess.Popen(
        command, env={**os.environ, **settings}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _admitted_by_two_processes(database: str, burst: int, **env: str) -> int:
    async with serve(echo_upstream()) as upstream:
        limits = {
            "CRM_GATEWAY_LIMITS__DEFAULT_RATE_PER_SECOND": "0.001",
            "CRM_GATEWAY_LIMITS__DEFAULT_BURST": str(burst),
            "CRM_GATEWAY_LIMITS__ROUTES": "[]",
            **env,
        }
        with (
            gateway_process(upstream, database, **limits) as one,
            gateway_process(upstream, database, **limits) as two,
        ):
            async with httpx.AsyncClient(timeout=10, headers=bearer("partner-app", roles=("partner",))) as http:

                async def up(url: str) -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get(f"{url}/health/live")).status_code == 200
                    return False

                await eventually(lambda: up(one), timeout=60, interval=0.2)
                await eventually(lambda: up(two), timeout=60, interval=0.2)
                answers = [await http.get(f"{url}{CUSTOMERS}/C1") for _ in range(burst) for url in (one, two)]
    assert {r.status_code for r in answers} <= {200, 429}
    return sum(r.status_code == 200 for r in answers)


@pytest.mark.timeout(180)
async def test_two_gateway_processes_sharing_redis_hold_one_limit(gateway_database: str) -> None:
    prefix = f"crm:test:{uuid.uuid4().hex}:"
    try:
        shared = await _admitted_by_two_processes(
            gateway_database, 5, CRM_GATEWAY_LIMITS__REDIS_URL=REDIS_URL, CRM_GATEWAY_LIMITS__KEY_PREFIX=prefix
        )
        alone = await _admitted_by_two_processes(gateway_database, 5)
    finally:
        store = redis.Redis.from_url(REDIS_URL)
        for key in store.scan_iter(f"{prefix}*"):
            store.delete(key)
        store.close()
    assert shared == 5, "one bucket in Redis: the two replicas together admit the burst once"
    assert alone == 10, "without Redis each process counts alone and admits the burst itself"


def failing_upstream(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def down(request: Request, path: str) -> JSONResponse:
        calls.append(request.method)
        return JSONResponse({"status": "overloaded"}, status_code=503)

    return app


async def test_an_upstream_that_keeps_failing_is_cut_off_by_its_circuit() -> None:
    calls: list[str] = []
    resilience = ResilienceSettings(
        breaker=BreakerSettings(consecutive_failures=3, cool_down_seconds=60),
        retry=RetrySettings(attempts=2, backoff_seconds=0.001),
    )
    async with serve(failing_upstream(calls)) as down, running_gateway(resilience=resilience, churn_url=down) as gw:
        agent = bearer("agent-1", roles=("agent", "analyst"))  # an analyst starts scoring runs
        first = await gw.http.get("/churn/v1/scores/C1", headers=agent)
        assert first.status_code == 503 and calls == ["GET", "GET"], "a GET is tried again once"
        second = await gw.http.post("/churn/v1/scoring-runs", headers=agent, json={})
        assert second.status_code == 503 and calls == ["GET", "GET", "POST"], "a POST is never repeated"

        cut_off = await gw.http.get("/churn/v1/scores/C1", headers=agent)
        assert cut_off.status_code == 503 and cut_off.headers["content-type"] == PROBLEM_JSON
        assert cut_off.json()["type"].endswith("upstream-unavailable") and int(cut_off.headers["Retry-After"]) >= 1
        assert len(calls) == 3, "the open circuit answers without asking the failing upstream"
        assert (await gw.http.get(f"{CUSTOMERS}/C1", headers=agent)).status_code == 200, "other upstreams still go"


def test_the_limits_follow_the_environment_with_nested_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_LIMITS__REDIS_URL", REDIS_URL)
    monkeypatch.setenv("CRM_GATEWAY_LIMITS__DEFAULT_BURST", "7")
    monkeypatch.setenv("CRM_GATEWAY_RESILIENCE__BREAKER__COOL_DOWN_SECONDS", "9")
    settings = Settings()
    assert (settings.limits.redis_url, settings.limits.default_burst) == (REDIS_URL, 7)
    assert settings.resilience.breaker.cool_down_seconds == 9


@pytest.fixture(autouse=True)
def _redis_is_there() -> None:
    """These tests need the machine's Redis (CI starts it); say so plainly rather than fail obscurely."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:  # pragma: no cover - a machine without Redis
        pytest.fail(f"Redis at {REDIS_URL} is needed: {exc}")
