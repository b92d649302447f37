"""The composed 360 view against small stand-in services on real ports: every part present, a part down, slow or
refused reported missing with its reason while the rest still come, the customer's own 404 as the answer, and the
caller's credentials on every part."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crm_gateway.app import create_app
from crm_gateway.settings import Settings
from crm_kit.broker import free_port
from crm_kit.errors import PROBLEM_BASE, PROBLEM_JSON, Forbidden, NotFound
from crm_kit.observability import service_metrics
from crm_kit.service import instrument
from crm_kit.settings import AppSettings
from crm_kit.testing import bearer, serve

AGENT = bearer("agent-0001", roles=("agent",))
PART_TIMEOUT = 0.5
CUSTOMER = "C110000012345"
VIEW = f"/api/v1/customers/{CUSTOMER}/360"
STAND_IN_SECONDS = 0.0


@dataclass
class Seen:
    """What each stand-in was sent."""

    authorization: dict[str, list[str | None]] = field(default_factory=dict)
    access_reason: list[str | None] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)

    def record(self, name: str, request: Request) -> None:
        self.authorization.setdefault(name, []).append(request.headers.get("authorization"))
        self.request_ids.append(request.headers.get("x-request-id"))
        if name == "customer":
            self.access_reason.append(request.headers.get("x-access-reason"))


def stand_in(name: str, seen: Seen, delay: float = STAND_IN_SECONDS) -> FastAPI:
    """One service as the view reads it, answering a fixed customer (C404: unknown; CDENIED: refused)."""
    app = FastAPI()
    instrument(app, service_metrics(f"compose-test-{name}"), AppSettings(log_json=False))

    async def arrive(request: Request) -> None:
        seen.record(name, request)
        await asyncio.sleep(delay)

    if name == "customer":

        @app.get("/api/v1/customers/{customer_id}/view360")
        async def view360(customer_id: str, request: Request) -> JSONResponse:
            await arrive(request)
            if customer_id == "C404":
                raise NotFound(f"No customer {customer_id}", field="customer_id")
            if customer_id == "CDENIED":
                raise Forbidden("This role may not read customers")
            return JSONResponse(
                {
                    "customer_id": customer_id,
                    "profile": {"id": customer_id, "name": "张伟", "created_at": "2026-11-20T09:30:00+08:00"},
                    "accounts": [{"id": "A1"}],
                    "lines": [{"id": "S1", "msisdn": "138****5678"}],
                    "tiers": {"value_tier": "high"},
                    "segments": [{"id": "SEG-1", "name": "5G"}],
                    "usage_30d": {"days_active": 12},
                    "tickets": {"open_count": 99},
                    "timeline": [{"id": 1}],
                },
                headers={"X-PII-Masked": "reason-required: send X-Access-Reason"},
            )

        @app.get("/api/v1/customers/{customer_id}/billing-summary")
        async def billing(customer_id: str, request: Request) -> dict[str, Any]:
            await arrive(request)
            return {
                "customer_id": customer_id,
                "arpu": {"fen": 12900, "yuan": "129.00"},
                "spend_trend": [
                    {"billing_period": "2026-09", "amount_due": {"fen": 12900, "yuan": "129.00"}, "invoices": 1},
                    {"billing_period": "2026-10", "amount_due": {"fen": 13500, "yuan": "135.00"}, "invoices": 1},
                ],
                "payment": {"status": "on_time", "outstanding": {"fen": 0, "yuan": "0.00"}},
            }

    elif name == "ticketing":

        @app.get("/tmf-api/troubleTicket/v4/troubleTicket")
        async def tickets(request: Request) -> JSONResponse:
            await arrive(request)
            assert request.query_params["customerId"] == CUSTOMER
            assert request.query_params["sort"] == "-creationDate"
            items = [{"id": "TT2", "status": "inProgress", "creationDate": "2026-11-24T09:00:00+08:00"}]
            return JSONResponse(items, headers={"X-Total-Count": "7"})

    elif name == "churn":

        @app.get("/churn/v1/customers/{customer_id}/score")
        async def score(customer_id: str, kind: str, request: Request) -> dict[str, Any]:
            await arrive(request)
            return {
                "customer_id": customer_id,
                "kind": kind,
                "score": "0.8123" if kind == "churn" else "0.0500",
                "risk_band": "high" if kind == "churn" else "low",
                "reasons": [{"feature": "data_trend_30d", "description": "Data use fell by half", "contribution": 0.4}],
                "scored_at": "2026-11-25T02:00:00+00:00",
                "features": {"data_trend_30d": -0.5},
            }

    else:

        @app.get("/campaign/v1/customers/{customer_id}/contacts")
        async def contacts(customer_id: str, request: Request) -> JSONResponse:
            await arrive(request)
            assert request.query_params["limit"] == "20"
            items = [{"contact_id": "CT-1", "status": "sent", "sent_at": "2026-11-23T10:00:00+08:00"}]
            return JSONResponse(items, headers={"X-Total-Count": "1"})

    return app


@dataclass
class System:
    gateway: httpx.AsyncClient
    seen: Seen


@contextlib.asynccontextmanager
async def system(tmp_path: Path, *, down: str | None = None, slow: str | None = None) -> AsyncIterator[System]:
    """The gateway before the four stand-ins; `down` names one whose port has nobody listening, `slow` one that
    answers long after the part timeout."""
    seen = Seen()
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        for name in ("customer", "ticketing", "churn", "campaign"):
            if name == down:
                urls[name] = f"http://127.0.0.1:{free_port()}"
            else:
                app = stand_in(name, seen, delay=30.0 if name == slow else STAND_IN_SECONDS)
                # the slow one is still sleeping on the abandoned request when the test ends: no waiting for it
                urls[name] = await stack.enter_async_context(serve(app, timeout_graceful_shutdown=1))
        settings = Settings(
            log_json=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
            customer_url=urls["customer"],
            ticketing_url=urls["ticketing"],
            churn_url=urls["churn"],
            campaign_url=urls["campaign"],
            compose_part_timeout_seconds=PART_TIMEOUT,
            connect_timeout_seconds=PART_TIMEOUT,
        )
        url = await stack.enter_async_context(serve(create_app(settings)))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=15, headers=AGENT))
        yield System(client, seen)


@pytest_asyncio.fixture
async def whole(tmp_path: Path) -> AsyncIterator[System]:
    async with system(tmp_path) as s:
        yield s


PARTS = ("customer", "billing", "tickets", "churn_score", "bad_debt_score", "campaign_contacts")


async def test_every_part_is_composed_from_its_service(whole: System) -> None:
    r = await whole.gateway.get(VIEW, headers={"X-Access-Reason": "TT-42 callback"})
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["customer_id"], view["complete"], view["missing"]) == (CUSTOMER, True, [])
    assert view["composed_at"].endswith("+08:00")
    assert {name: view[name]["status"] for name in PARTS} == dict.fromkeys(PARTS, "present")
    assert {name: view[name]["source"] for name in PARTS} == {
        "customer": "customer",
        "billing": "customer",
        "tickets": "ticketing",
        "churn_score": "churn",
        "bad_debt_score": "churn",
        "campaign_contacts": "campaign",
    }
    customer = view["customer"]["data"]
    assert sorted(customer) == ["accounts", "lines", "profile", "segments", "tiers", "usage_30d"], (
        "the customer service's projections of other services are read from their owners instead"
    )
    assert customer["lines"] == [{"id": "S1", "msisdn": "138****5678"}]
    assert r.headers["X-PII-Masked"] == "reason-required: send X-Access-Reason", "the masking's reason comes along"
    billing = view["billing"]["data"]
    assert billing["arpu"] == {"fen": 12900, "yuan": "129.00"}
    assert billing["last_invoice"]["billing_period"] == "2026-10"
    assert view["tickets"]["data"]["total"] == 7
    assert [t["id"] for t in view["tickets"]["data"]["items"]] == ["TT2"]
    churn = view["churn_score"]["data"]
    assert (churn["kind"], churn["risk_band"], churn["score"]) == ("churn", "high", "0.8123")
    assert churn["reasons"][0]["feature"] == "data_trend_30d"
    assert churn["scored_at"] == "2026-11-25T10:00:00+08:00", "shown in China Standard Time"
    assert "features" not in churn
    assert view["bad_debt_score"]["data"]["kind"] == "bad_debt"
    assert view["campaign_contacts"]["data"] == {
        "total": 1,
        "items": [{"contact_id": "CT-1", "status": "sent", "sent_at": "2026-11-23T10:00:00+08:00"}],
    }


async def test_the_callers_credentials_and_request_id_go_to_every_part(whole: System) -> None:
    r = await whole.gateway.get(VIEW, headers={"X-Access-Reason": "TT-42 callback", "X-Request-ID": "compose-1"})
    assert r.status_code == 200, r.text
    seen = whole.seen
    assert {name: len(calls) for name, calls in seen.authorization.items()} == {
        "customer": 2,
        "ticketing": 1,
        "churn": 2,
        "campaign": 1,
    }
    assert {a for calls in seen.authorization.values() for a in calls} == {AGENT["Authorization"]}
    assert seen.access_reason == ["TT-42 callback", "TT-42 callback"], "the reason for unmasking reaches the customer"
    assert set(seen.request_ids) == {"compose-1"}


async def test_a_service_that_is_down_leaves_its_parts_missing_and_the_rest_present(tmp_path: Path) -> None:
    async with system(tmp_path, down="churn") as s:
        r = await s.gateway.get(VIEW)
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["complete"], view["missing"]) == (False, ["churn_score", "bad_debt_score"])
    for name in ("churn_score", "bad_debt_score"):
        part = view[name]
        assert (part["status"], part["source"], part["reason"], part["upstream_status"]) == (
            "missing",
            "churn",
            "unavailable",
            None,
        )
        assert part["detail"].startswith("The churn service is unavailable")
    assert all(view[name]["status"] == "present" for name in ("customer", "billing", "tickets", "campaign_contacts"))


async def test_a_slow_service_is_reported_missing_by_timeout(tmp_path: Path) -> None:
    async with system(tmp_path, slow="ticketing") as s:
        r = await s.gateway.get(VIEW)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["missing"] == ["tickets"]
    assert (view["tickets"]["reason"], view["tickets"]["detail"]) == (
        "timeout",
        f"The ticketing service did not answer within {PART_TIMEOUT}s",
    )
    assert view["campaign_contacts"]["status"] == "present"


async def test_a_refused_part_is_missing_as_forbidden(tmp_path: Path) -> None:
    app = FastAPI()
    instrument(app, service_metrics("compose-test-refusing"), AppSettings(log_json=False))

    @app.get("/campaign/v1/customers/{customer_id}/contacts")
    async def contacts(customer_id: str) -> JSONResponse:
        raise Forbidden("Needs one of the roles marketer, retention, admin, analyst, supervisor, agent")

    seen = Seen()
    async with (
        serve(stand_in("customer", seen)) as customer,
        serve(stand_in("ticketing", seen)) as ticketing,
        serve(stand_in("churn", seen)) as churn,
        serve(app) as campaign,
    ):
        settings = Settings(
            log_json=False,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
            customer_url=customer,
            ticketing_url=ticketing,
            churn_url=churn,
            campaign_url=campaign,
        )
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, headers=AGENT) as client:
            r = await client.get(VIEW)
    assert r.status_code == 200, r.text
    part = r.json()["campaign_contacts"]
    assert (part["status"], part["reason"], part["upstream_status"]) == ("missing", "forbidden", 403)
    assert part["detail"].startswith("Needs one of the roles")


@pytest.mark.parametrize(("customer_id", "status", "slug"), [("C404", 404, "not-found"), ("CDENIED", 403, "forbidden")])
async def test_the_customer_services_refusal_is_the_answer(
    whole: System, customer_id: str, status: int, slug: str
) -> None:
    r = await whole.gateway.get(f"/api/v1/customers/{customer_id}/360")
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    body = r.json()
    assert (body["type"], body["status"]) == (PROBLEM_BASE + slug, status)
    assert body["instance"] == f"/api/v1/customers/{customer_id}/360"
    assert body["request_id"] == r.headers["X-Request-ID"]
    if status == 404:
        assert (body["detail"], body["field"]) == ("No customer C404", "customer_id")


async def test_no_customer_service_no_view(tmp_path: Path) -> None:
    async with system(tmp_path, down="customer") as s:
        r = await s.gateway.get(VIEW)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["type"] == PROBLEM_BASE + "upstream-unavailable"


async def test_bad_input_and_no_credentials_are_problems(whole: System) -> None:
    r = await whole.gateway.get("/api/v1/customers/C%201/360")
    assert (r.status_code, r.headers["content-type"], r.json()["field"]) == (422, PROBLEM_JSON, "customer_id")
    r = await whole.gateway.get(VIEW, params={"items": 0})
    assert (r.status_code, r.json()["field"]) == (422, "items")
    r = await whole.gateway.get(VIEW, headers={"Authorization": ""})
    assert (r.status_code, r.headers["content-type"]) == (401, PROBLEM_JSON)
    assert whole.seen.authorization == {}, "refused at the edge: no service was asked"
