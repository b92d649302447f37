"""What ticketing learns from customer.profile through the real broker: key accounts (大客户) get the green channel's
shorter SLA and are seen by their account manager (客户经理) alone among the managers; late key-account changes do not
undo newer ones; a merged duplicate's tickets go to the survivor; an erased customer's tickets are pseudonymised."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crm_kit.testing import bearer
from crm_ticketing.domain.standing import ERASED_TEXT

pytestmark = pytest.mark.usefixtures("consuming")

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
KEY_ACCOUNT_CHANGED = "customer.profile.key_account_changed.v1"
KAM_LI = bearer("kam-li", roles=("key_account_manager",))


def designated(service, customer_id: str, at: str, manager: str = "kam-li") -> Any:
    return service.profile_event(
        KEY_ACCOUNT_CHANGED, "designated_strategic", customer_id=customer_id, account_manager=manager, changed_at=at
    )


def revoked(service, customer_id: str, at: str) -> Any:
    return service.profile_event(KEY_ACCOUNT_CHANGED, "revoked", customer_id=customer_id, changed_at=at)


async def _ids(http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    r = await http.get(TICKETS, params={"sort": "creationDate"}, headers=headers)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()]


async def test_a_key_account_gets_the_green_channel_and_keeps_it_on_its_open_tickets(service):
    await service.send_profile(designated(service, "C900", "2026-11-20T09:30:00+08:00"))

    green = await service.create("C900")
    standard = await service.create("C901")
    assert green["slaPolicyId"] == "billing_dispute:medium:key_account"
    assert (green["firstResponseDueDate"], green["resolutionDueDate"]) == (
        "2026-11-23T11:00:00+08:00",  # 1 h instead of 2
        "2026-11-24T10:00:00+08:00",  # 1 business day (9 h) instead of 2
    )
    assert standard["slaPolicyId"] == "billing_dispute:medium:standard"
    assert standard["resolutionDueDate"] == "2026-11-25T10:00:00+08:00"

    # a revocation older than the designation, arriving late, changes nothing; a newer one does
    await service.send_profile(revoked(service, "C900", "2026-11-01T09:00:00+08:00"))
    assert (await service.create("C900"))["slaPolicyId"].endswith(":key_account")
    await service.send_profile(revoked(service, "C900", "2026-11-22T09:00:00+08:00"))
    assert (await service.create("C900"))["slaPolicyId"].endswith(":standard")
    # the ticket opened as a key account keeps the promise made then
    assert (await service.get(green["id"]))["resolutionDueDate"] == "2026-11-24T10:00:00+08:00"


async def test_a_key_account_manager_sees_the_tickets_of_their_portfolio_only(service):
    await service.send_profile(
        designated(service, "C910", "2026-11-20T09:30:00+08:00"),
        designated(service, "C911", "2026-11-20T09:31:00+08:00", manager="kam-zhao"),
        service.profile_event("customer.profile.created.v1", "from_activation", customer_id="C912"),
    )
    opened = []
    for customer in ("C910", "C911", "C912"):
        opened.append((await service.create(customer))["id"])
        service.clock.advance(seconds=1)
    mine, theirs, standard = opened

    assert await _ids(service.http, KAM_LI) == [mine]
    assert (await service.http.get(f"{TICKETS}/{mine}", headers=KAM_LI)).status_code == 200
    for other in (theirs, standard):
        r = await service.http.get(f"{TICKETS}/{other}", headers=KAM_LI)
        assert r.status_code == 404, r.text
    broader = bearer("kam-li", roles=("key_account_manager", "supervisor"))
    assert await _ids(service.http, broader) == [mine, theirs, standard]

    await service.send_profile(revoked(service, "C910", "2026-11-22T09:00:00+08:00"))
    assert await _ids(service.http, KAM_LI) == []


async def test_a_merged_duplicates_tickets_go_to_the_survivor(service):
    await service.send_profile(designated(service, "C920", "2026-11-20T09:30:00+08:00"))
    duplicate = (await service.create("C921"))["id"]
    merge = service.profile_event(
        "customer.profile.merged.v1", "duplicate_from_store", survivor_id="C920", merged_id="C921"
    )
    await service.send_profile(merge)

    moved = await service.get(duplicate)
    assert moved["relatedParty"][0]["id"] == "C920"
    assert moved["slaPolicyId"].endswith(":standard")  # as it was opened
    items, total = await service.list(customerId="C920")
    assert ([t["id"] for t in items], total) == ([duplicate], 1)
    assert (await service.list(customerId="C921"))[1] == 0

    r = await service.http.post(TICKETS, json=service.body("C921"))
    assert r.status_code == 409, r.text
    problem = r.json()
    assert (problem["type"], problem["merged_into"], problem["field"]) == (
        "urn:telecom-crm:problem:customer-merged",
        "C920",
        "relatedParty",
    )
    # a late key-account change of the duplicate does not make it one again
    await service.send_profile(designated(service, "C921", "2026-12-01T09:00:00+08:00"))
    assert (await service.http.post(TICKETS, json=service.body("C921"))).status_code == 409


async def test_an_erased_customers_tickets_keep_their_facts_and_lose_their_words(service):
    before = await service.create(
        "C930",
        relatedParty=[
            {"id": "C930", "role": "customer", "@referredType": "Individual", "name": "张三"},
            {"id": "P-1", "role": "reporter", "@referredType": "Individual", "name": "张三的妻子"},
        ],
    )
    r = await service.patch(before["id"], {"status": "pending", "statusChangeReason": "等待张三回电 13800000930"})
    assert r.status_code == 200, r.text
    other = await service.create("C931")

    service.clock.advance(hours=1)
    erased = service.profile_event(
        "customer.profile.erased.v1", "customer_request", customer_id="C930", erased_at="2026-11-23T10:30:00+08:00"
    )
    await service.send_profile(erased)
    after_erasure = await service.create("C930", description="新的投诉: 信号差")

    scrubbed = await service.get(before["id"])
    assert (scrubbed["description"], scrubbed["name"], scrubbed["statusChangeReason"]) == (ERASED_TEXT, None, None)
    assert [n["text"] for n in scrubbed["note"]] == [ERASED_TEXT]
    assert [c["changeReason"] for c in scrubbed["statusChange"]] == [None, None]
    assert [(p["id"], p["name"]) for p in scrubbed["relatedParty"]] == [("C930", None), ("P-1", None)]
    assert [e["name"] for e in scrubbed["relatedEntity"]] == [None, None]
    assert [(a["id"], a["url"], a["name"]) for a in scrubbed["attachment"]] == [("DOC-7", None, None)]
    # the facts stay: what, when, how it went
    for member in ("status", "category", "priority", "creationDate", "slaPolicyId", "externalIdentifier"):
        assert scrubbed[member] == r.json()[member], member
    assert (await service.get(other["id"]))["description"] == other["description"]
    assert (await service.get(after_erasure["id"]))["description"] == "新的投诉: 信号差"
