"""What ops see: readiness tied to the database, the broker and the consumer's assignment; Prometheus metrics."""

from __future__ import annotations

import asyncio

import httpx

from crm_customer.app import create_app
from crm_customer.settings import Settings
from crm_kit.broker import EmbeddedBroker, free_port
from crm_kit.settings import KafkaSettings
from crm_kit.testing import bearer, eventually, serve


async def test_ready_with_database_broker_and_consumer_assigned_and_consumption_metered(service, boss):
    live = await service.http.get("/health/live")
    assert live.status_code == 200

    r = await service.http.get("/health/ready")

    assert r.status_code == 200
    assert r.json() == {
        "status": "ready",
        "checks": {
            "database": "up",
            "broker": "up",
            "topics": "up",
            "consumer:customer": "assigned",
            "consumer:customer-projections": "assigned",
        },
    }

    activated = "billing.subscription.activated.v1"
    before = await service.consumed(type=activated, outcome="applied")

    await boss.send(boss.activated("C990", "S990", "13800000990", "2026-11-20T09:30:00+08:00"))
    await service.wait_for("C990")

    text = (await service.http.get("/metrics")).text
    assert "crm_customer_events_consumed_total" in text
    assert await service.consumed(type=activated, outcome="applied") == before + 1
    route = "/tmf-api/customerManagement/v4/customer/{customer_id}"
    assert await service.metric("crm_customer_http_requests_total", method="GET", route=route, status="200") >= 1
    assert "C990" not in text  # routes are counted by template, not by raw path


async def test_not_ready_until_the_broker_is_up_while_reads_are_served(database_url):
    port = free_port()
    kafka = KafkaSettings(
        bootstrap=f"127.0.0.1:{port}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        rebalance_timeout_ms=500,
        request_timeout_ms=5000,
    )
    settings = Settings(database_url=await database_url("customer"), kafka=kafka, log_json=False)
    broker = EmbeddedBroker(port=port)
    try:
        async with (
            serve(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=10, headers=bearer()) as http,
        ):
            r = await http.get("/health/ready")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["checks"] == {
                "database": "up",
                "broker": "down",
                "topics": "provisioning",
                "consumer:customer": "joining",
                "consumer:customer-projections": "joining",
            }
            missing = await http.get("/tmf-api/customerManagement/v4/customer/C1")
            assert missing.status_code == 404  # the database side answers meanwhile

            await asyncio.to_thread(broker.start)

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await eventually(ready, timeout=30)
    finally:
        await asyncio.to_thread(broker.stop)
