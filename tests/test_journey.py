"""BOSS subscription event → billing-adapter → bus → customer service → readable through the gateway."""

from __future__ import annotations

import time

import httpx

from crm_kit.testing import eventually
from tests.boss import activation, line_event

CUSTOMER = "/tmf-api/customerManagement/v4/customer"


async def _customer(gateway: httpx.AsyncClient, cid: str) -> dict | None:
    r = await gateway.get(f"{CUSTOMER}/{cid}")
    return r.json() if r.status_code == 200 else None


async def test_pushed_activation_is_readable_through_the_gateway_within_5_seconds(system):
    async with system.customer_service():
        await eventually(lambda: _ready(system.gateway), timeout=20)
        started = time.monotonic()
        r = await system.gateway.post("/boss/v1/events", json={"records": [activation(1)]})
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
        await system.gateway.post("/boss/v1/events", json={"records": [activation(1)]})
        await eventually(lambda: _customer(system.gateway, "C000001"), timeout=5)
    # customer service is down: pushes still succeed, the gateway says the customer side is unavailable
    pushed = [activation(2), line_event(1, "suspended", 1, "2026-11-21T10:00:00+08:00", reason="arrears")]
    r = await system.gateway.post("/boss/v1/events", json={"records": pushed})
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
