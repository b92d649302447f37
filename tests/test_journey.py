"""BOSS subscription event → billing-adapter → bus → customer service → readable through the gateway."""

from __future__ import annotations

import time

import httpx

from crm_kit.testing import bearer, boss_push, eventually, read_topic
from tests.boss import activation, line_event

CUSTOMER = "/tmf-api/customerManagement/v4/customer"


async def _customer(gateway: httpx.AsyncClient, cid: str) -> dict | None:
    r = await gateway.get(f"{CUSTOMER}/{cid}")
    return r.json() if r.status_code == 200 else None


async def test_pushed_activation_is_readable_through_the_gateway_within_5_seconds(system):
    async with system.customer_service():
        await eventually(lambda: _ready(system.gateway), timeout=20)
        started = time.monotonic()
        r = await boss_push(system.gateway, [activation(1)])
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 1
        customer = await eventually(lambda: _customer(system.gateway, "C000001"), timeout=5)
        assert time.monotonic() - started < 5
    assert customer["name"] == "客户1"
    assert customer["status"] == "active"
    assert customer["subscription"][0]["msisdn"] == "138****0001"
    assert customer["subscription"][0]["plan"]["monthlyFee"] == {"unit": "CNY", "value": "129.00", "valueFen": 12900}


async def _ready(gateway: httpx.AsyncClient) -> bool:
    return (await gateway.get("/health/ready")).status_code == 200


async def test_a_restarted_customer_service_misses_nothing(system):
    async with system.customer_service():
        await eventually(lambda: _ready(system.gateway), timeout=20)
        await boss_push(system.gateway, [activation(1)])
        await eventually(lambda: _customer(system.gateway, "C000001"), timeout=5)
    # customer service is down: pushes still succeed, the gateway says the customer side is unavailable
    pushed = [activation(2), line_event(1, "suspended", 1, "2026-11-21T10:00:00+08:00", reason="arrears")]
    # gzip, signed over the gzip bytes: the gateway hands body and signature headers on untouched
    r = await boss_push(system.gateway, pushed, gzip=True)
    assert r.status_code == 202, r.text
    down = await system.gateway.get(f"{CUSTOMER}/C000001")
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    async with system.customer_service():
        second = await eventually(lambda: _customer(system.gateway, "C000002"), timeout=15)
        first = await eventually(lambda: _suspended(system.gateway, "C000001"), timeout=15)
    assert second["status"] == "active"
    assert first["subscription"][0]["statusReason"] == "arrears"


async def _suspended(gateway: httpx.AsyncClient, cid: str) -> dict | None:
    c = await _customer(gateway, cid)
    return c if c and c["status"] == "suspended" else None


async def test_the_same_event_pushed_twice_is_applied_once(system, kafka):
    async with system.customer_service():
        await eventually(lambda: _ready(system.gateway), timeout=20)
        batch = [
            activation(7),
            line_event(
                7,
                "plan_changed",
                1,
                "2026-11-21T10:00:00+08:00",
                from_plan_code="5G-ULT-129",
                plan={"code": "5G-ULT-199", "name": "5G畅享套餐199元", "monthly_fee_fen": 19900},
            ),
        ]
        first = await boss_push(system.gateway, batch)
        again = await boss_push(system.gateway, batch)
        assert first.json()["accepted"] == 2
        assert again.status_code == 202
        assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
        customer = await eventually(lambda: _customer(system.gateway, "C000007"), timeout=5)
        profile = await read_topic(kafka.bootstrap, "customer.profile", expect=2)
    billing = await read_topic(kafka.bootstrap, "billing.subscription", expect=2)
    assert len(billing) == 2
    assert len(customer["subscription"]) == 1
    assert customer["subscription"][0]["plan"]["code"] == "5G-ULT-199"
    created = [r for r in profile if b"customer.profile.created.v1" in r.value]
    assert len(created) == 1


async def test_bad_records_are_refused_by_name_and_kept_while_good_ones_go_through(system):
    async with system.customer_service():
        await eventually(lambda: _ready(system.gateway), timeout=20)
        bad_fee = activation(9)
        bad_fee["data"]["plan"]["monthly_fee_fen"] = 129.5
        unknown = {**activation(10), "event_type": "subscription.teleported"}
        r = await boss_push(system.gateway, [activation(8), bad_fee, unknown])
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["field"] == "records[1].data.plan.monthly_fee_fen"
        assert problem["request_id"] == r.headers["x-request-id"]
        assert [x["status"] for x in problem["results"]] == ["accepted", "rejected", "rejected"]
        assert problem["results"][2]["field"] == "records[2].event_type"
        await eventually(lambda: _customer(system.gateway, "C000008"), timeout=5)
        kept = (await system.gateway.get("/boss/v1/quarantine", headers=bearer("admin-0001", roles=("admin",)))).json()
        assert {q["boss_event_id"] for q in kept} == {"BOSS-ACT-000009", "BOSS-ACT-000010"}
        assert all(q["reason"] and q["raw"] for q in kept)

        malformed = await boss_push(system.gateway, b'{"records": [')
        assert malformed.status_code == 400
        assert malformed.json()["type"].endswith("malformed-body")
        huge = await system.gateway.post(
            "/boss/v1/events", content=b"x" * (10 * 1024 * 1024), headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413
        assert huge.headers["content-type"] == "application/problem+json"
