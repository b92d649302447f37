"""Every failure answers RFC 9457 problem+json with a stable type, the field at fault and the request id.

A small FastAPI app instrumented with the kit's `instrument(...)`, served on a real port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Query, Request
from prometheus_client import REGISTRY
from pydantic import BaseModel, Field

from crm_kit.errors import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    Conflict,
    CrmError,
    InvalidInput,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamTimeout,
    UpstreamUnavailable,
    field_path,
)
from crm_kit.observability import service_metrics
from crm_kit.service import instrument
from crm_kit.settings import AppSettings
from crm_kit.testing import serve

LIMIT = 1024


class Customer(BaseModel):
    name: str = Field(min_length=1)


class Line(BaseModel):
    msisdn: str = Field(pattern=r"^1[3-9][0-9]{9}$")


class Order(BaseModel):
    customer: Customer
    lines: list[Line]


ERRORS: dict[str, CrmError] = {
    "invalid": InvalidInput("msisdn has 10 digits", field="msisdn"),
    "malformed": MalformedBody("not JSON"),
    "missing": NotFound("No customer C1", field="customer_id"),
    "conflict": Conflict("The ticket is closed", field="state", current="closed"),
    "too-large": PayloadTooLarge("too much"),
    "media": UnsupportedMediaType("send JSON"),
    "down": UpstreamUnavailable("customer is down", upstream="customer"),
    "slow": UpstreamTimeout("customer is slow", upstream="customer"),
}


def make_app() -> FastAPI:
    app = FastAPI()
    instrument(app, service_metrics("kit-errors"), AppSettings(max_body_bytes=LIMIT, log_json=False))

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise ERRORS[kind]

    @app.post("/orders", status_code=201)
    async def create(order: Order) -> dict[str, int]:
        return {"lines": len(order.lines)}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/search")
    async def search(limit: int = Query(10, le=1000)) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    return app


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(make_app()) as url, httpx.AsyncClient(base_url=url, timeout=10) as c:
        yield c


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["request_id"] == r.headers["x-request-id"], "the request id is in the body and the header"
    assert r.headers.get_list("x-request-id") == [body["request_id"]]
    return body


@pytest.mark.parametrize("kind", sorted(ERRORS))
async def test_every_crm_error_is_problem_json_with_its_status_type_and_field(client: httpx.AsyncClient, kind: str):
    error = ERRORS[kind]
    r = await client.get(f"/fail/{kind}")
    body = assert_problem(r, error.status, error.slug)
    assert body["title"] == error.title
    assert body["detail"] == error.detail
    assert body["instance"] == f"/fail/{kind}"
    assert body.get("field") == error.field
    for key, value in error.extra.items():
        assert body[key] == value


async def test_the_callers_request_id_is_echoed(client: httpx.AsyncClient):
    r = await client.get("/fail/missing", headers={"X-Request-ID": "agent-console-42"})
    assert assert_problem(r, 404, "not-found")["request_id"] == "agent-console-42"
    ok = await client.get("/search", headers={"X-Request-ID": "agent-console-43"})
    assert ok.status_code == 200
    assert ok.headers.get_list("x-request-id") == ["agent-console-43"]


async def test_a_request_id_is_generated_when_the_caller_sends_none(client: httpx.AsyncClient):
    first, second = await client.get("/search"), await client.get("/search")
    assert first.headers["x-request-id"] and second.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer": {"name": ""}, "lines": []}, "customer.name"),
        (
            {"customer": {"name": "张伟"}, "lines": [{"msisdn": "13812345678"}, {"msisdn": "1381234567"}]},
            "lines[1].msisdn",
        ),
        ({"lines": []}, "customer"),
        ({"customer": {"name": "张伟"}, "lines": "13812345678"}, "lines"),
    ],
    ids=["nested", "in-a-list", "missing", "wrong-type"],
)
async def test_an_invalid_body_is_422_naming_the_field(client: httpx.AsyncClient, body: dict, field: str):
    r = await client.post("/orders", json=body)
    problem = assert_problem(r, 422, "invalid-input")
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: ")
    assert problem["errors"][0]["field"] == field
    assert problem["instance"] == "/orders"


async def test_an_invalid_query_parameter_is_422_naming_it(client: httpx.AsyncClient):
    r = await client.get("/search", params={"limit": 5000})
    assert assert_problem(r, 422, "invalid-input")["field"] == "limit"
    r = await client.get("/search", params={"limit": "ten"})
    assert assert_problem(r, 422, "invalid-input")["field"] == "limit"


async def test_a_valid_body_passes(client: httpx.AsyncClient):
    r = await client.post("/orders", json={"customer": {"name": "张伟"}, "lines": [{"msisdn": "13812345678"}]})
    assert r.status_code == 201
    assert r.json() == {"lines": 1}


@pytest.mark.parametrize("raw", [b'{"customer": {"name": ', b"{'single': 'quotes'}", b"\xff\xfe"])
async def test_malformed_json_is_400_not_422_or_500(client: httpx.AsyncClient, raw: bytes):
    r = await client.post("/orders", content=raw, headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed-body")
    assert "Traceback" not in r.text


async def test_an_unknown_route_is_404_problem_json(client: httpx.AsyncClient):
    r = await client.get("/no/such/route")
    body = assert_problem(r, 404, "not-found")
    assert body["instance"] == "/no/such/route"


async def test_a_wrong_method_is_405_problem_json(client: httpx.AsyncClient):
    r = await client.delete("/orders")
    assert_problem(r, 405, "method-not-allowed")
    assert "POST" in r.headers["allow"]


async def test_an_unexpected_error_is_500_problem_json_without_internals(client: httpx.AsyncClient):
    r = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(r, 500, "internal")
    assert body["request_id"] == "boom-1"
    assert "hunter2" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["/raw", "/orders"])
async def test_a_body_over_the_limit_is_413_by_content_length(client: httpx.AsyncClient, path: str):
    r = await client.post(path, content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"})
    body = assert_problem(r, 413, "payload-too-large")
    assert str(LIMIT) in body["detail"]


async def _chunks(total: int, size: int = 256) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize("path", ["/raw", "/orders"])
async def test_a_body_over_the_limit_is_413_while_streaming_without_content_length(
    client: httpx.AsyncClient, path: str
):
    request = client.build_request(
        "POST", path, content=_chunks(LIMIT * 4), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    r = await client.send(request)
    assert_problem(r, 413, "payload-too-large")


async def test_a_streamed_body_under_the_limit_is_read_whole(client: httpx.AsyncClient):
    r = await client.post("/raw", content=_chunks(LIMIT))
    assert r.status_code == 200
    assert r.json() == {"size": LIMIT}


def test_field_path_writes_the_field_as_the_caller_wrote_it():
    assert field_path(("body", "records", 3, "msisdn")) == "records[3].msisdn"
    assert field_path(("query", "limit")) == "limit"
    assert field_path(("body",)) == "body"
    assert field_path(("body", "body")) == "body", "a member named like a location is kept"
    assert field_path(("body", "note", 0, "body")) == "note[0].body"


def _requests(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("crm_kit_errors_http_requests_total", labels) or 0.0


async def test_red_metrics_count_by_route_template_and_status(client: httpx.AsyncClient):
    before = {
        "missing": _requests("GET", "/fail/{kind}", 404),
        "invalid": _requests("POST", "/orders", 422),
        "unmatched": _requests("GET", "unmatched", 404),
        "boom": _requests("GET", "/boom", 500),
    }
    await client.get("/fail/missing")
    await client.get("/fail/missing")
    await client.post("/orders", json={})
    await client.get("/no/such/route")
    await client.get("/boom")
    assert _requests("GET", "/fail/{kind}", 404) == before["missing"] + 2, "labelled by template, not raw path"
    assert _requests("POST", "/orders", 422) == before["invalid"] + 1
    assert _requests("GET", "unmatched", 404) == before["unmatched"] + 1
    assert _requests("GET", "/boom", 500) == before["boom"] + 1
    count = REGISTRY.get_sample_value(
        "crm_kit_errors_http_request_duration_seconds_count", {"method": "GET", "route": "/fail/{kind}"}
    )
    assert count and count >= 2


async def test_the_openapi_document_says_failures_are_problem_json(client: httpx.AsyncClient):
    """What the document promises is what the handlers send: a client generated from it parses the 422 it gets."""
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem_schema = document["components"]["schemas"]["Problem"]
    assert set(problem_schema["required"]) == {"type", "title", "status", "detail"}
    invalid = document["paths"]["/orders"]["post"]["responses"]["422"]
    assert invalid["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    sent = (await client.post("/orders", json={"customer": {"name": ""}, "lines": []})).json()
    assert set(problem_schema["required"]) <= set(sent)
    assert set(sent) <= set(problem_schema["properties"])
