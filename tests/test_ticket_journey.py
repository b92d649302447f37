"""Issue 5 end to end, through the gateway only: a customer the BOSS fed complains (投诉); the agent opens a TMF621
trouble ticket, works it and resolves it; the customer's 360 view follows, fed by the ticketing service's events on
the real broker."""

from __future__ import annotations

from typing import Any

import httpx

from crm_kit.testing import bearer, eventually
from tests.test_customer_journey import PLAN_129, activated, push, ready, view360

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
AGENT = bearer("agent-9", roles=("agent",))
CUSTOMER = "C8800001"


async def _customer_known(gateway: httpx.AsyncClient) -> bool:
    return (await view360(gateway, CUSTOMER)).status_code == 200


async def _tickets_in_view(gateway: httpx.AsyncClient, open_count: int) -> dict[str, Any] | None:
    tickets = (await view360(gateway, CUSTOMER)).json()["tickets"]
    return tickets if tickets["open_count"] == open_count else None


async def test_a_complaint_is_opened_worked_and_resolved_and_the_360_view_follows(system):
    async with system.customer_service():
        await _journey(system.gateway)


async def _journey(gateway: httpx.AsyncClient) -> None:
    await eventually(lambda: ready(gateway), timeout=20)
    await push(
        gateway, [activated(CUSTOMER, "S8800001", "13988000001", "周敏", "GZ", PLAN_129, "2026-11-02T10:00:00+08:00")]
    )
    await eventually(lambda: _customer_known(gateway), timeout=15)

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
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert r.headers["location"] == f"{TICKETS}/{ticket['id']}"
    assert ticket["status"] == "acknowledged"
    assert ticket["resolutionDueDate"] is not None

    shown = await eventually(lambda: _tickets_in_view(gateway, 1), timeout=15)
    [opened] = shown["open"]
    assert (opened["ticket_id"], opened["state"], opened["category"]) == (
        ticket["id"],
        "acknowledged",
        "billing_dispute",
    )
    assert opened["title"] == "流量费争议"

    for status in ("inProgress", "resolved"):
        r = await gateway.patch(
            f"{TICKETS}/{ticket['id']}",
            headers={**AGENT, "Content-Type": "application/merge-patch+json"},
            json={"status": status, "statusChangeReason": "退还多扣费用"},
        )
        assert r.status_code == 200, r.text
    assert [c["status"] for c in r.json()["statusChange"]] == ["acknowledged", "inProgress", "resolved"]

    r = await gateway.patch(
        f"{TICKETS}/{ticket['id']}",
        headers={**AGENT, "Content-Type": "application/merge-patch+json"},
        json={"status": "pending"},
    )
    assert r.status_code == 409, r.text
    assert set(r.json()["allowed"]) == {"inProgress", "closed"}

    await eventually(lambda: _tickets_in_view(gateway, 0), timeout=15)
    timeline = (await view360(gateway, CUSTOMER)).json()["timeline"]
    assert [e["type"] for e in timeline if e["kind"] == "ticket"] == [
        "ticketing.ticket.state_changed.v1",
        "ticketing.ticket.state_changed.v1",
        "ticketing.ticket.created.v1",
    ]
