"""The composed 360 view in the running system, through the gateway only: a customer the BOSS fed, with a bill and
a complaint, seen whole from the services that own each part; each service's own checks still apply; and the view
degrades part by part as services stop."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from crm_kit.testing import assert_problem, bearer, eventually
from tests.test_customer_journey import PLAN_129, activated, invoice, push, ready

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
AGENT = bearer("agent-9", roles=("agent",))
CUSTOMER = "C8900001"
VIEW = f"/api/v1/customers/{CUSTOMER}/360"


async def stop_server_on(port: int) -> None:
    """Stop the service listening on `port` as a shutdown would. The `system` fixture keeps a handle only on the
    customer service; each of the others is a uvicorn server running as a task of this loop, found by its port."""
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        server = frame.f_locals.get("self") if frame is not None else None
        if isinstance(server, uvicorn.Server) and server.config.port == port:
            server.should_exit = True
            await asyncio.wait({task}, timeout=15)
            return
    raise AssertionError(f"no server on port {port}")


async def _view(gateway: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await gateway.get(VIEW, headers={**AGENT, **headers})


async def _composed(gateway: httpx.AsyncClient) -> dict[str, Any] | None:
    """The view once the activation, the bill (on topics of their own: either may come first) and the complaint have
    reached the parts that show them."""
    r = await _view(gateway)
    if r.status_code != 200:
        return None
    view: dict[str, Any] = r.json()
    if not view["customer"]["data"]["lines"]:
        return None
    billing, tickets = view["billing"], view["tickets"]
    if billing["status"] != "present" or billing["data"]["last_invoice"] is None:
        return None
    return view if tickets["status"] == "present" and tickets["data"]["total"] == 1 else None


async def test_the_360_view_is_composed_from_every_service_and_degrades_part_by_part(system):
    gateway = system.gateway
    async with system.customer_service():
        await eventually(lambda: ready(gateway), timeout=20)
        await push(
            gateway,
            [
                activated(CUSTOMER, "S8900001", "13989000001", "吴芳", "SZ", PLAN_129, "2026-09-02T10:00:00+08:00"),
                invoice(CUSTOMER, "2026-10", 12_900),
            ],
        )
        opened = await eventually(lambda: _open_complaint(gateway), timeout=15)

        view = await eventually(lambda: _composed(gateway), timeout=15)
        assert view["customer_id"] == CUSTOMER
        assert view["composed_at"].endswith("+08:00")
        customer = view["customer"]["data"]
        assert customer["profile"]["name"] == "吴芳"
        assert [line["msisdn"] for line in customer["lines"]] == ["139****0001"], "masked by the customer service"
        assert [a["id"] for a in customer["accounts"]] == ["A8900001"]
        billing = view["billing"]["data"]
        assert billing["last_invoice"]["billing_period"] == "2026-10"
        assert billing["last_invoice"]["amount_due"]["fen"] == 12_900
        [ticket] = view["tickets"]["data"]["items"]
        assert (ticket["id"], ticket["category"]) == (opened, "billing_dispute")
        assert ticket["creationDate"].endswith("+08:00")
        assert view["campaign_contacts"] == {
            "status": "present",
            "source": "campaign",
            "data": {"total": 0, "items": []},
        }
        for kind in ("churn_score", "bad_debt_score"):
            score = view[kind]
            assert (score["status"], score["reason"], score["upstream_status"]) == ("missing", "unavailable", 503), (
                "no model is trained in this system: the churn service says so, and the view shows it"
            )
        assert set(view["missing"]) == {"churn_score", "bad_debt_score"}

        # each service's own checks: a key-account manager with no such customer in their portfolio sees none
        kam = await gateway.get(VIEW, headers=bearer("kam-77", roles=("key_account_manager",)))
        assert_problem(kam, 404, "customer_id")

        campaign_port = urlsplit(system.metrics_url).port
        await stop_server_on(campaign_port)
        r = await _view(gateway)
        assert r.status_code == 200, r.text
        degraded = r.json()
        part = degraded["campaign_contacts"]
        assert (part["status"], part["reason"], part["upstream_status"]) == ("missing", "unavailable", None)
        assert degraded["customer"]["data"]["profile"]["name"] == "吴芳"
        assert degraded["tickets"]["data"]["items"][0]["id"] == opened
        assert degraded["billing"]["status"] == "present"

    down = await _view(gateway)
    assert_problem(down, 503, slug="upstream-unavailable")
    assert "customer" in down.json()["detail"], "without the customer there is nothing to compose around"


async def _open_complaint(gateway: httpx.AsyncClient) -> str | None:
    """A complaint for the customer, once the ticketing service accepts one for them."""
    r = await gateway.post(
        TICKETS,
        headers=AGENT,
        json={
            "description": "十月账单多扣了20元流量费",
            "name": "流量费争议",
            "ticketType": "complaint",
            "category": "billing_dispute",
            "priority": "high",
            "channel": {"id": "hotline", "name": "10000"},
            "relatedParty": [{"id": CUSTOMER, "role": "customer", "@referredType": "Individual"}],
        },
    )
    return r.json()["id"] if r.status_code == 201 else None
