"""The gateway in front of small real upstreams: routing, pass-through, request ids, timeouts, problem+json."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from crm_gateway.app import create_app
from crm_gateway.domain.routing import Route, RouteTable
from crm_gateway.settings import Settings
from crm_kit.broker import free_port
from crm_kit.errors import PROBLEM_BASE, PROBLEM_JSON
from crm_kit.observability import service_metrics
from crm_kit.service import instrument
from crm_kit.settings import AppSettings
from crm_kit.testing import bearer, serve

CUSTOMER = "/tmf-api/customerManagement/v4/customer"
TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"


def upstream(name: str, *, ready: bool = True) -> FastAPI:
    """A stand-in service: instrumented like the real ones, it echoes what it was sent."""
    app = FastAPI()
    instrument(app, service_metrics(f"gw-test-{name}"), AppSettings(log_json=False))

    @app.get("/health/ready")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ready" if ready else "starting"}, status_code=200 if ready else 503)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(request: Request, path: str) -> Response:
        if "slow" in request.query_params:
            await asyncio.sleep(float(request.query_params["slow"]))
        body = await request.body()
        status = int(request.query_params.get("status", "200"))
        return JSONResponse(
            {
                "upstream": name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode("ascii"),
                "query": request.url.query,
                "body": body.decode("utf-8"),
                "content_type": request.headers.get("content-type"),
                "request_ids": request.headers.getlist("x-request-id"),
                "forwarded_for": request.headers.getlist("x-forwarded-for"),
                "authorization": request.headers.get("authorization"),
                "cookie": request.headers.get("cookie"),
                "host": request.headers.get("host"),
                "peer": f"{request.client.host}:{request.client.port}" if request.client else None,
            },
            status_code=status,
            headers={"X-Total-Count": "42", "Location": request.scope["raw_path"].decode("ascii") + "/new"}
            | ({"Set-Cookie": f"session={request.query_params['cookie']}"} if "cookie" in request.query_params else {}),
        )

    return app


@dataclass
class Gateway:
    client: httpx.AsyncClient
    customer: str
    billing: str


@contextlib.asynccontextmanager
async def gateway(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway in front of `settings`' upstreams, and a client of it with an admin's token: routing is under test
    here, not authorisation (`test_access.py`), and an admin holds every route's scope."""
    options = {"log_json": False, "timeout_seconds": 5.0, "connect_timeout_seconds": 1.0} | settings
    async with (
        serve(create_app(Settings(**options))) as url,
        httpx.AsyncClient(base_url=url, timeout=15, headers=bearer("admin-0001", roles=("admin",))) as client,
    ):
        yield client


@pytest_asyncio.fixture
async def gw() -> AsyncIterator[Gateway]:
    # proxy_headers off: the stand-ins report the connection's own address, not the one forwarded
    async with (
        serve(upstream("customer"), proxy_headers=False) as customer,
        serve(upstream("billing-adapter"), proxy_headers=False) as billing,
        serve(upstream("ticketing"), proxy_headers=False) as ticketing,
        serve(upstream("churn"), proxy_headers=False) as churn,
        serve(upstream("campaign"), proxy_headers=False) as campaign,
        gateway(
            customer_url=customer,
            billing_adapter_url=billing,
            ticketing_url=ticketing,
            churn_url=churn,
            campaign_url=campaign,
        ) as client,
    ):
        yield Gateway(client, customer, billing)


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert r.headers.get_list("x-request-id") == [body["request_id"]]
    return body


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/boss/v1/events", "billing-adapter"),
        (f"{CUSTOMER}/C110000012345", "customer"),
        (CUSTOMER, "customer"),
        ("/api/v1/customers", "customer"),
        ("/api/v1/customers/C1/timeline", "customer"),
        (TICKETS, "ticketing"),
        (f"{TICKETS}/TT0001", "ticketing"),
        ("/api/v1/tickets/satisfaction", "ticketing"),
        ("/api/v1/tickets/reports/backlog", "ticketing"),
        ("/api/v1/queues/billing", "ticketing"),
        ("/api/v1/knowledge/articles", "ticketing"),
        ("/tmf-api/troubleTicket/v4/hub", "ticketing"),
        ("/churn/v1/customers/C1/score", "churn"),
        ("/churn/v1/models", "churn"),
        ("/campaign/v1/campaigns", "campaign"),
    ],
)
async def test_requests_are_routed_by_path_prefix(gw: Gateway, path: str, expected: str):
    r = await gw.client.get(path)
    assert r.status_code == 200, r.text
    assert r.json()["upstream"] == expected
    assert r.json()["path"] == path


async def test_the_longest_prefix_wins():
    table = RouteTable(
        [
            Route("/api/v1/", "everything", "http://a", 1.0),
            Route("/api/v1/customers", "customer", "http://b", 1.0),
        ]
    )
    assert table.resolve("/api/v1/customers/C1").upstream == "customer"
    assert table.resolve("/api/v1/customers").upstream == "customer"
    assert table.resolve("/api/v1/tickets").upstream == "everything"
    assert table.resolve("/tmf-api/x") is None


@pytest.mark.parametrize(
    "path", ["/api/v1/customersexport", "/boss/v1events", "/tmf-api/customerManagement/v4x/customer"]
)
async def test_a_prefix_matches_whole_path_segments_only(gw: Gateway, path: str):
    r = await gw.client.get(path)
    assert_problem(r, 404, "not-found")


async def test_query_string_body_and_headers_pass_through(gw: Gateway):
    query = "fields=name,status&offset=0&limit=10&name=%E5%BC%A0%E4%BC%9F&tag=a&tag=b"
    body = '{"name": "张伟", "status": "active"}'
    token = bearer("agent-0042", roles=("agent", "supervisor"))
    r = await gw.client.patch(
        f"{CUSTOMER}/C1?{query}",
        content=body.encode(),
        headers={"Content-Type": "application/merge-patch+json", **token},
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "PATCH"
    assert seen["query"] == query
    assert seen["body"] == body
    assert seen["content_type"] == "application/merge-patch+json"
    assert seen["authorization"] == token["Authorization"], "the caller's token reaches the service as sent"
    assert seen["host"] == gw.customer.removeprefix("http://"), "the upstream is addressed by its own host"
    assert r.headers["x-total-count"] == "42"
    assert r.headers["location"] == f"{CUSTOMER}/C1/new"


async def test_each_boss_push_reaches_the_adapter_on_a_connection_of_its_own(gw: Gateway):
    """A push pinned to a kept-alive connection would pin a whole feed to one adapter worker; the other routes
    keep their connections."""
    pushes = [(await gw.client.post("/boss/v1/events", content=b"{}")).json()["peer"] for _ in range(3)]
    assert len(set(pushes)) == 3, pushes
    reads = [(await gw.client.get(f"{CUSTOMER}/C1")).json()["peer"] for _ in range(3)]
    assert len(set(reads)) == 1, reads
    quarantine_reads = [(await gw.client.get("/boss/v1/quarantine")).json()["peer"] for _ in range(3)]
    assert len(set(quarantine_reads)) == 1, quarantine_reads


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_every_method_passes_through(gw: Gateway, method: str):
    r = await gw.client.request(method, "/boss/v1/events", content=b'{"records": []}')
    assert r.status_code == 200, r.text
    assert r.json()["method"] == method
    assert r.json()["body"] == ('{"records": []}')


async def test_an_encoded_path_reaches_the_upstream_as_sent(gw: Gateway):
    r = await gw.client.get(f"{CUSTOMER}/%E5%BC%A0%20%E4%BC%9F")
    assert r.status_code == 200, r.text
    assert r.json()["raw_path"] == f"{CUSTOMER}/%E5%BC%A0%20%E4%BC%9F"
    assert r.json()["path"] == f"{CUSTOMER}/张 伟"


async def test_the_upstream_status_and_problem_pass_through(gw: Gateway):
    r = await gw.client.post("/boss/v1/events?status=422", content=b"{}")
    assert r.status_code == 422
    missing = await gw.client.get("/api/v1/customers/nobody/no/such/route/on/customer", params={"status": 404})
    assert missing.status_code == 404


async def test_a_request_id_is_generated_and_the_upstream_sees_the_one_the_client_gets(gw: Gateway):
    first = await gw.client.get(f"{CUSTOMER}/C1")
    second = await gw.client.get(f"{CUSTOMER}/C1")
    for r in (first, second):
        assert r.status_code == 200
        [request_id] = r.headers.get_list("x-request-id")
        assert request_id
        assert r.json()["request_ids"] == [request_id]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_the_callers_request_id_is_forwarded_once_and_echoed_once(gw: Gateway):
    r = await gw.client.post("/boss/v1/events", content=b"{}", headers={"X-Request-ID": "boss-batch-20261120-7"})
    assert r.status_code == 200
    assert r.json()["request_ids"] == ["boss-batch-20261120-7"]
    assert r.headers.get_list("x-request-id") == ["boss-batch-20261120-7"]


async def test_the_upstream_hears_the_client_address_once(gw: Gateway):
    r = await gw.client.get(f"{CUSTOMER}/C1")
    assert r.json()["forwarded_for"] == ["127.0.0.1"]
    # a loopback peer is a trusted proxy to uvicorn: the address it forwards is the client's
    r = await gw.client.get(f"{CUSTOMER}/C1", headers={"X-Forwarded-For": "10.1.2.3"})
    assert r.json()["forwarded_for"] == ["10.1.2.3"]


async def test_an_upstream_with_nothing_listening_is_503_problem_json():
    async with (
        serve(upstream("customer")) as customer,
        gateway(customer_url=customer, billing_adapter_url=f"http://127.0.0.1:{free_port()}") as client,
    ):
        r = await client.post("/boss/v1/events", content=b"{}", headers={"X-Request-ID": "push-1"})
        body = assert_problem(r, 503, "upstream-unavailable")
        assert body["upstream"] == "billing-adapter"
        assert body["request_id"] == "push-1"
        assert body["instance"] == "/boss/v1/events"
        ok = await client.get(f"{CUSTOMER}/C1")
        assert ok.status_code == 200, "the other upstream still serves"


async def _resetting_server() -> tuple[asyncio.Server, str]:
    """Accepts a connection, reads the request, and resets the connection without an answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_an_upstream_that_drops_the_connection_is_503_not_500():
    server, url = await _resetting_server()
    try:
        async with gateway(customer_url=url, billing_adapter_url=url) as client:
            r = await client.get(f"{CUSTOMER}/C1")
            body = assert_problem(r, 503, "upstream-unavailable")
            assert body["upstream"] == "customer"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_upstream_slower_than_its_route_timeout_is_504_problem_json():
    async with (
        serve(upstream("customer")) as customer,
        serve(upstream("billing-adapter")) as billing,
        gateway(customer_url=customer, billing_adapter_url=billing, timeout_seconds=0.3, boss_timeout_seconds=3) as c,
    ):
        r = await c.get(f"{CUSTOMER}/C1", params={"slow": "1"}, headers={"X-Request-ID": "slow-1"})
        body = assert_problem(r, 504, "upstream-timeout")
        assert body["upstream"] == "customer"
        assert body["request_id"] == "slow-1"
        assert "0.3" in body["detail"]
        # each route has its own timeout: the BOSS feed is allowed longer
        r = await c.post("/boss/v1/events", params={"slow": "1"}, content=b"{}")
        assert r.status_code == 200, r.text


async def test_an_unknown_path_is_404_problem_json(gw: Gateway):
    r = await gw.client.get("/nowhere/at/all", headers={"X-Request-ID": "lost-1"})
    body = assert_problem(r, 404, "not-found")
    assert body["request_id"] == "lost-1"
    assert body["instance"] == "/nowhere/at/all"
    assert body["field"] == "path"


async def test_ready_when_every_upstream_is_ready(gw: Gateway):
    r = await gw.client.get("/health/ready")
    assert r.status_code == 200, r.text
    checks = {"customer": "up", "billing-adapter": "up", "ticketing": "up", "churn": "up", "campaign": "up"}
    assert r.json() == {"status": "ready", "checks": checks}
    assert (await gw.client.get("/health/live")).json() == {"status": "up"}


async def test_not_ready_when_an_upstream_is_down_then_ready_when_it_is_up():
    port = free_port()
    async with (
        serve(upstream("customer")) as customer,
        serve(upstream("ticketing")) as ticketing,
        serve(upstream("churn")) as churn,
        serve(upstream("campaign")) as campaign,
        gateway(
            customer_url=customer,
            billing_adapter_url=f"http://127.0.0.1:{port}",
            ticketing_url=ticketing,
            churn_url=churn,
            campaign_url=campaign,
        ) as client,
    ):
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.headers["content-type"] == PROBLEM_JSON
        body = r.json()
        assert body["checks"]["customer"] == "up"
        assert body["checks"]["billing-adapter"].startswith("down")
        assert "billing-adapter" in body["detail"]
        async with serve(upstream("billing-adapter"), port=port):
            r = await client.get("/health/ready")
            assert r.status_code == 200, r.text
        assert (await client.get("/health/live")).status_code == 200, "live even when an upstream is down"


async def test_not_ready_when_an_upstream_says_it_is_not_ready():
    async with (
        serve(upstream("customer", ready=False)) as customer,
        serve(upstream("billing-adapter")) as billing,
        gateway(customer_url=customer, billing_adapter_url=billing) as client,
    ):
        r = await client.get("/health/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["customer"] == "not ready (503)"


async def test_metrics_count_proxied_requests(gw: Gateway):
    await gw.client.get(f"{CUSTOMER}/C1")
    await gw.client.get("/nowhere")
    text = (await gw.client.get("/metrics")).text
    assert "crm_gateway_http_requests_total" in text
    assert 'status="404"' in text


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 512):
        yield b"x" * 512


async def test_a_body_over_the_gateways_limit_is_413_and_never_reaches_the_upstream():
    async with (
        serve(upstream("customer")) as customer,
        gateway(customer_url=customer, billing_adapter_url=customer, max_body_bytes=2048) as client,
    ):
        r = await client.post("/boss/v1/events", content=b"x" * 4096)
        assert_problem(r, 413, "payload-too-large")
        r = await client.post("/boss/v1/events", content=_chunks(8192))
        assert_problem(r, 413, "payload-too-large")
        r = await client.post("/boss/v1/events", content=_chunks(2048))
        assert r.status_code == 200
        assert len(r.json()["body"]) == 2048


async def test_a_boss_file_passes_through_under_its_own_limit_not_the_general_one():
    async with (
        serve(upstream("billing-adapter")) as billing,
        gateway(
            customer_url=billing, billing_adapter_url=billing, max_body_bytes=2048, boss_upload_max_bytes=16384
        ) as client,
    ):
        r = await client.post("/boss/v1/imports", params={"format": "csv"}, content=_chunks(8192))
        assert r.status_code == 200, r.text
        assert r.json()["path"] == "/boss/v1/imports" and r.json()["body"] == "x" * 8192
        r = await client.post("/boss/v1/imports", content=b"x" * 20000)
        assert_problem(r, 413, "payload-too-large")
        r = await client.post("/boss/v1/imports", content=_chunks(20480))
        assert_problem(r, 413, "payload-too-large")
        r = await client.post("/boss/v1/events", content=b"x" * 4096)
        assert_problem(r, 413, "payload-too-large")


async def test_the_answer_carries_each_of_the_gateways_own_headers_once(gw: Gateway):
    r = await gw.client.get(f"{CUSTOMER}/C1")
    assert r.status_code == 200
    for name in ("x-request-id", "server", "date", "content-type", "x-total-count"):
        assert len(r.headers.get_list(name)) == 1, (name, r.headers.get_list(name))


async def test_a_cookie_one_caller_is_given_is_passed_to_it_and_never_sent_for_another(gw: Gateway):
    """The gateway's upstream connections are shared by every caller: they must keep no cookie jar of their own."""
    given = await gw.client.get(f"{CUSTOMER}/C1", params={"cookie": "agent-a"})
    assert given.headers["set-cookie"] == "session=agent-a"
    gw.client.cookies.clear()  # the next caller is someone else, with no cookie of its own
    r = await gw.client.get(f"{CUSTOMER}/C2")
    assert r.status_code == 200, r.text
    assert r.json()["cookie"] is None


async def test_proxied_requests_are_counted_by_upstream_route_not_by_catch_all(gw: Gateway):
    await gw.client.get(f"{CUSTOMER}/C1")
    metrics = (await gw.client.get("/metrics")).text
    gateway_lines = [line for line in metrics.splitlines() if line.startswith("crm_gateway_http_requests_total{")]
    assert any('route="/tmf-api/customerManagement/v4/* → customer"' in line for line in gateway_lines)
    assert not any('route="/{path:path}"' in line for line in gateway_lines)
