"""Circuit breakers on an injected clock, and retries against small real upstreams over HTTP."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from crm_gateway.domain.resilience import (
    BreakerSettings,
    CircuitBreaker,
    CircuitOpen,
    Resilience,
    ResilienceSettings,
    RetrySettings,
    State,
)
from crm_gateway.transport import AiohttpTransport
from crm_kit.broker import free_port
from crm_kit.observability import service_metrics
from crm_kit.service import instrument
from crm_kit.settings import AppSettings
from crm_kit.testing import assert_problem, serve


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unique(name: str) -> str:
    """Upstream names of their own per test: breakers and metrics are labelled by upstream."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_breaker(clock: ManualClock, **settings: float) -> CircuitBreaker:
    options = {"consecutive_failures": 3, "minimum_calls": 100, "cool_down_seconds": 10.0} | settings
    return CircuitBreaker(unique("customer"), BreakerSettings(**options), clock)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record(failed=True)


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count() -> None:
    breaker = make_breaker(ManualClock())
    fail(breaker, 2)
    breaker.record(failed=False)
    fail(breaker, 2)
    assert breaker.state is State.CLOSED
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert sample("crm_gateway_circuit_state", upstream=breaker.upstream) == 2


def test_an_open_circuit_refuses_until_the_cool_down_is_over() -> None:
    clock = ManualClock()
    breaker = make_breaker(clock)
    fail(breaker, 3)
    clock.advance(4)
    assert not breaker.allow()
    assert breaker.retry_after() == 6
    clock.advance(5.9)
    assert not breaker.allow()


def test_after_the_cool_down_one_trial_goes_through_and_its_success_closes_the_circuit() -> None:
    clock = ManualClock()
    breaker = make_breaker(clock)
    fail(breaker, 3)
    clock.advance(10)
    assert breaker.allow()
    assert breaker.state is State.HALF_OPEN
    assert sample("crm_gateway_circuit_state", upstream=breaker.upstream) == 1
    assert not breaker.allow()  # only the one trial
    breaker.record(failed=False)
    assert breaker.state is State.CLOSED
    assert all(breaker.allow() for _ in range(5))
    assert sample("crm_gateway_circuit_transitions_total", upstream=breaker.upstream, state="closed") == 1


def test_a_failed_trial_opens_the_circuit_for_another_whole_cool_down() -> None:
    clock = ManualClock()
    breaker = make_breaker(clock)
    fail(breaker, 3)
    clock.advance(10)
    fail(breaker, 1)
    assert breaker.state is State.OPEN
    assert breaker.retry_after() == 10
    assert sample("crm_gateway_circuit_transitions_total", upstream=breaker.upstream, state="open") == 2


def test_a_trial_that_ends_without_a_verdict_makes_way_for_another() -> None:
    clock = ManualClock()
    breaker = make_breaker(clock)
    fail(breaker, 3)
    clock.advance(10)
    assert breaker.allow()
    breaker.release()  # the caller went away
    assert breaker.allow()
    assert not breaker.allow()
    clock.advance(10)  # the trial never reported
    assert breaker.allow()


def test_a_failure_ratio_over_the_window_opens_the_circuit() -> None:
    breaker = make_breaker(ManualClock(), consecutive_failures=100, minimum_calls=10, failure_ratio=0.5)
    for n in range(9):
        assert breaker.allow()
        breaker.record(failed=n % 2 == 1)
    assert breaker.state is State.CLOSED  # 4 of 9: too few calls to judge, and under half
    breaker.record(failed=True)
    assert breaker.state is State.OPEN  # 5 of 10


def test_calls_older_than_the_window_no_longer_count() -> None:
    clock = ManualClock()
    breaker = make_breaker(clock, consecutive_failures=100, minimum_calls=4, failure_ratio=0.5, window_seconds=30)
    fail(breaker, 3)
    clock.advance(31)
    for failed in (False, True, False, False):
        breaker.record(failed=failed)
    assert breaker.state is State.CLOSED  # 1 of the last 4, though 4 of all 7


def test_backoff_is_jittered_and_bounded() -> None:
    resilience = Resilience(ResilienceSettings(retry=RetrySettings(backoff_seconds=0.1, max_backoff_seconds=0.3)))
    first = [resilience.backoff(1) for _ in range(200)]
    later = [resilience.backoff(5) for _ in range(200)]
    assert all(0 <= d <= 0.1 for d in first)
    assert all(0 <= d <= 0.3 for d in later)
    assert max(later) > 0.15  # doubled up to the cap, not stuck at the first bound
    assert len(set(later)) > 100  # drawn, not fixed


@dataclass
class Upstream:
    url: str
    hits: Counter[str]


def flaky_app(hits: Counter[str]) -> FastAPI:
    """`/answer/{key}?fail=N&status=S`: answers S the first N times it is asked for `key`, then 200."""
    app = FastAPI()

    @app.api_route("/answer/{key}", methods=["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST", "PATCH"])
    async def answer(request: Request, key: str) -> Response:
        body = await request.body()
        hits[key] += 1
        if hits[key] <= int(request.query_params.get("fail", "0")):
            return Response(status_code=int(request.query_params.get("status", "503")))
        return Response(body or b"fine", status_code=200)

    @app.get("/broken-body/{key}")
    async def broken_body(key: str) -> StreamingResponse:
        hits[key] += 1

        async def chunks() -> AsyncIterator[bytes]:
            yield b"the first part"
            raise RuntimeError("the upstream fell over mid-answer")

        return StreamingResponse(chunks())

    return app


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[Upstream]:
    hits: Counter[str] = Counter()
    async with serve(flaky_app(hits)) as url:
        yield Upstream(url, hits)


@pytest_asyncio.fixture
async def transport() -> AsyncIterator[httpx.AsyncBaseTransport]:
    """The gateway's own upstream transport, as the proxy sends on it."""
    async with AiohttpTransport(max_connections=20) as transport:
        yield transport


def resilience(attempts: int = 3, clock: ManualClock | None = None, **breaker: float) -> Resilience:
    settings = ResilienceSettings(
        breaker=BreakerSettings(**({"consecutive_failures": 10, "cool_down_seconds": 60.0} | breaker)),
        retry=RetrySettings(attempts=attempts, backoff_seconds=0.01, max_backoff_seconds=0.02),
    )
    return Resilience(settings, clock) if clock else Resilience(settings)


def build(method: str, url: str, **options: Any) -> httpx.Request:
    return httpx.Request(method, url, extensions={"timeout": httpx.Timeout(5).as_dict()}, **options)


async def send(
    resilience: Resilience, transport: httpx.AsyncBaseTransport, method: str, url: str, name: str, **options: Any
) -> httpx.Response:
    response = await resilience.send(transport, build(method, url, **options), name)
    await response.aread()
    return response


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
async def test_an_idempotent_request_is_sent_again_after_503s(
    upstream: Upstream, transport: httpx.AsyncBaseTransport, method: str
) -> None:
    name = unique("customer")
    r = await send(resilience(), transport, method, f"{upstream.url}/answer/k?fail=2", name)
    assert r.status_code == 200
    assert upstream.hits["k"] == 3
    assert sample("crm_gateway_upstream_retries_total", upstream=name, reason="503") == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_request_that_is_not_idempotent_is_never_sent_again(
    upstream: Upstream, transport: httpx.AsyncBaseTransport, method: str
) -> None:
    r = await send(
        resilience(), transport, method, f"{upstream.url}/answer/k?fail=2", unique("customer"), content=b"{}"
    )
    assert r.status_code == 503
    assert upstream.hits["k"] == 1


@pytest.mark.parametrize(("status", "sent"), [(502, 2), (504, 2), (500, 1), (429, 1), (404, 1)])
async def test_only_502_503_and_504_are_retried(
    upstream: Upstream, transport: httpx.AsyncBaseTransport, status: int, sent: int
) -> None:
    r = await send(
        resilience(), transport, "GET", f"{upstream.url}/answer/k?fail=1&status={status}", unique("customer")
    )
    assert upstream.hits["k"] == sent
    assert r.status_code == (200 if sent == 2 else status)


async def test_retries_are_bounded_and_the_last_answer_is_passed_on(
    upstream: Upstream, transport: httpx.AsyncBaseTransport
) -> None:
    r = await send(resilience(attempts=3), transport, "GET", f"{upstream.url}/answer/k?fail=10", unique("customer"))
    assert r.status_code == 503
    assert upstream.hits["k"] == 3


async def test_a_body_streamed_through_is_not_sent_again(
    upstream: Upstream, transport: httpx.AsyncBaseTransport
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"a file of gigabytes"

    r = await send(resilience(), transport, "PUT", f"{upstream.url}/answer/k?fail=2", unique("billing"), content=body())
    assert r.status_code == 503
    assert upstream.hits["k"] == 1


async def test_a_put_with_its_body_is_sent_again_whole(upstream: Upstream, transport: httpx.AsyncBaseTransport) -> None:
    r = await send(resilience(), transport, "PUT", f"{upstream.url}/answer/k?fail=1", unique("customer"), content=b"{}")
    assert (r.status_code, r.content, upstream.hits["k"]) == (200, b"{}", 2)


async def test_nothing_is_sent_again_once_the_answer_has_begun(
    upstream: Upstream, transport: httpx.AsyncBaseTransport
) -> None:
    r = await resilience().send(transport, build("GET", f"{upstream.url}/broken-body/k"), unique("customer"))
    assert r.status_code == 200
    with pytest.raises(httpx.HTTPError):
        await r.aread()
    assert upstream.hits["k"] == 1


async def test_a_refused_connection_is_retried_for_a_get(transport: httpx.AsyncBaseTransport) -> None:
    """Nothing listens at first; the upstream comes up during the first backoff, and the retry reaches it."""
    port = free_port()
    hits: Counter[str] = Counter()
    waits: list[float] = []
    async with contextlib.AsyncExitStack() as stack:

        async def start_upstream_while_waiting(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 1:
                await stack.enter_async_context(serve(flaky_app(hits), port=port))

        name = unique("churn")
        settings = ResilienceSettings(retry=RetrySettings(attempts=3))
        retrying = Resilience(settings, sleep=start_upstream_while_waiting)
        r = await send(retrying, transport, "GET", f"http://127.0.0.1:{port}/answer/k", name)
    assert r.status_code == 200
    assert (hits["k"], len(waits)) == (1, 1)
    assert sample("crm_gateway_upstream_retries_total", upstream=name, reason="ConnectError") == 1


async def test_a_refused_connection_is_not_retried_for_a_post(transport: httpx.AsyncBaseTransport) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    retrying = Resilience(ResilienceSettings(), sleep=record)
    with pytest.raises(httpx.ConnectError):
        await retrying.send(transport, build("POST", f"http://127.0.0.1:{free_port()}/x"), unique("campaign"))
    assert waits == []


async def test_no_retry_once_the_circuit_opens_then_fast_503s_until_a_trial_succeeds(
    upstream: Upstream, transport: httpx.AsyncBaseTransport
) -> None:
    clock = ManualClock()
    breaking = resilience(attempts=5, clock=clock, consecutive_failures=2, cool_down_seconds=30.0)
    name = unique("ticketing")
    url = f"{upstream.url}/answer/k?fail=2"
    first = await send(breaking, transport, "GET", url, name)
    assert (first.status_code, upstream.hits["k"]) == (503, 2)  # the second failure opened it: no third try
    with pytest.raises(CircuitOpen) as refused:
        await send(breaking, transport, "GET", url, name)
    assert refused.value.headers == {"Retry-After": "30"}
    assert upstream.hits["k"] == 2
    assert sample("crm_gateway_circuit_rejected_total", upstream=name) == 1
    clock.advance(30)
    trial = await send(breaking, transport, "GET", url, name)
    assert (trial.status_code, upstream.hits["k"]) == (200, 3)
    assert breaking.breaker(name).state is State.CLOSED


async def test_an_open_circuit_answers_a_problem_503_with_retry_after(
    upstream: Upstream, transport: httpx.AsyncBaseTransport
) -> None:
    """As the proxy will use it: `send`, and the kit's handlers turn `CircuitOpen` into problem+json."""
    breaking = resilience(attempts=1, consecutive_failures=1, cool_down_seconds=20.0)
    app = FastAPI()
    instrument(app, service_metrics("gw-resilience-test"), AppSettings(log_json=False))

    @app.get("/{path:path}")
    async def proxy(request: Request, path: str) -> Response:
        target = f"{upstream.url}/{path}?{request.url.query}"
        answer = await send(breaking, transport, "GET", target, "customer-behind-test-gateway")
        return Response(answer.content, status_code=answer.status_code)

    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        passed_on = await client.get("/answer/k?fail=5")
        fast = await client.get("/answer/k?fail=5")
    assert passed_on.status_code == 503
    body = assert_problem(fast, 503, slug="upstream-unavailable")
    assert fast.headers["Retry-After"] == "20"
    assert (body["upstream"], body["retry_after_seconds"]) == ("customer-behind-test-gateway", 20)
    assert upstream.hits["k"] == 1
