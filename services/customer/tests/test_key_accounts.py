"""Key accounts (大客户) through the served API: designation, reassignment and revocation by supervisors with their
history and customer.profile events, the portfolios, and the object-level rule that an account manager (客户经理)
sees only the customers in their own portfolio, on every customer route."""

from __future__ import annotations

from typing import Any

import pytest

from crm_kit.events import CloudEvent
from crm_kit.testing import bearer

KEY_ACCOUNT_CHANGED = "customer.profile.key_account_changed.v1"
KA = "/api/v1/key-accounts"
CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
ADMIN = bearer("admin-1", roles=("admin",))
PROBLEM = "application/problem+json"


def kam(subject: str) -> dict[str, str]:
    return bearer(subject, roles=("key_account_manager",))


async def known_customer(service, boss, customer_id: str, name: str = "张伟") -> str:
    n = customer_id[1:].rjust(4, "0")
    await boss.send(boss.activated(customer_id, f"S{n}", f"1390000{n}", "2026-11-20T09:30:00+08:00", name=name))
    await service.wait_for(customer_id)
    return customer_id


async def designate(service, cid: str, tier: str = "gold", manager: str = "kam-li", **headers: str) -> Any:
    body = {"tier": tier, "account_manager": manager, "reason": "Group contract signed"}
    return await service.http.put(f"{KA}/{cid}", json=body, headers=headers or SUPERVISOR)


async def key_account_events(service, boss, expect: int) -> list[CloudEvent]:
    mine = []
    for key, event in await service.profile_events(expect=expect):
        if event.type == KEY_ACCOUNT_CHANGED:
            boss.contracts.validate_event(event)
            assert key == event.subject == event.data["customer_id"]
            mine.append(event)
    return mine


def assert_problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
    return body


async def test_a_supervisor_designates_a_key_account_once_with_history_and_one_event(service, boss):
    cid = await known_customer(service, boss, "C8001")

    r = await designate(service, cid, tier="strategic", manager="kam-li")
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": cid, "key_account": True, "tier": "strategic", "account_manager": "kam-li"}

    again = await designate(service, cid, tier="strategic", manager="kam-li", **ADMIN)
    assert again.status_code == 200
    assert again.json() == r.json()

    history = await service.http.get(f"{KA}/{cid}/history", headers=SUPERVISOR)
    assert history.status_code == 200
    assert history.headers["X-Total-Count"] == "1"
    [entry] = history.json()
    assert entry["change"] == "designated"
    assert (entry["from_manager"], entry["to_manager"], entry["tier"]) == (None, "kam-li", "strategic")
    assert entry["changed_by"] == "sup-wang"
    assert entry["reason"] == "Group contract signed"
    assert entry["changed_at"].endswith("+08:00")

    # activation: created + updated; then exactly one key-account event for the two PUTs
    [event] = await key_account_events(service, boss, expect=3)
    assert event.data["change"] == "designated"
    assert event.data["tier"] == "strategic"
    assert event.data["account_manager"] == "kam-li"
    assert event.data["from_manager"] is None
    assert event.data["changed_by"] == "sup-wang"


async def test_an_account_manager_sees_only_their_portfolio_on_every_customer_route(service, boss):
    mine = await known_customer(service, boss, "C8011")
    theirs = await known_customer(service, boss, "C8012")
    plain = await known_customer(service, boss, "C8013")
    assert (await designate(service, mine, manager="kam-li")).status_code == 200
    assert (await designate(service, theirs, manager="kam-zhao")).status_code == 200

    li = kam("kam-li")
    assert (await service.http.get(f"{CUSTOMERS}/{mine}", headers=li)).status_code == 200
    assert (await service.http.get(f"/api/v1/customers/{mine}/consents", headers=li)).status_code == 200
    for other in (theirs, plain):
        assert_problem(await service.http.get(f"{CUSTOMERS}/{other}", headers=li), 404)
        assert_problem(await service.http.get(f"/api/v1/customers/{other}/consents", headers=li), 404)
        assert_problem(await service.http.get(f"{KA}/{other}/history", headers=li), 404)
    listed = await service.http.get(CUSTOMERS, headers=li)
    assert [c["id"] for c in listed.json()] == [mine]
    assert listed.headers["X-Total-Count"] == "1"
    # search too: the three numbers share a prefix, each manager finds only their own
    for manager, own in (("kam-li", mine), ("kam-zhao", theirs), ("kam-wu", None)):
        for params in ({"q": "13900008"}, {"q": "张伟", "by": "name"}, {"q": "A801", "by": "account"}):
            found = await service.http.get("/api/v1/customers/search", params=params, headers=kam(manager))
            assert found.status_code == 200, found.text
            assert [h["id"] for h in found.json()] == ([own] if own else []), (manager, params)
    # an agent sees everyone
    assert (await service.http.get(f"{CUSTOMERS}/{plain}")).status_code == 200


async def test_after_reassignment_the_old_manager_loses_the_customer_and_the_new_one_gains_it(service, boss):
    cid = await known_customer(service, boss, "C8021")
    assert (await designate(service, cid, tier="gold", manager="kam-li")).status_code == 200
    assert (await service.http.get(f"{CUSTOMERS}/{cid}", headers=kam("kam-zhao"))).status_code == 404

    r = await service.http.post(
        f"{KA}/{cid}/reassign", json={"to_manager": "kam-zhao", "reason": "Territory change"}, headers=SUPERVISOR
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": cid, "key_account": True, "tier": "gold", "account_manager": "kam-zhao"}

    assert_problem(await service.http.get(f"{CUSTOMERS}/{cid}", headers=kam("kam-li")), 404)
    assert (await service.http.get(f"{CUSTOMERS}/{cid}", headers=kam("kam-zhao"))).status_code == 200
    assert (await service.http.get(f"/api/v1/customers/{cid}/consents", headers=kam("kam-zhao"))).status_code == 200

    same = await service.http.post(
        f"{KA}/{cid}/reassign", json={"to_manager": "kam-zhao", "reason": "again"}, headers=SUPERVISOR
    )
    assert same.status_code == 200
    tier = await designate(service, cid, tier="strategic", manager="kam-zhao")
    assert tier.json()["tier"] == "strategic"

    history = await service.http.get(f"{KA}/{cid}/history", headers=kam("kam-zhao"))
    assert history.headers["X-Total-Count"] == "3"
    assert [(e["change"], e["from_manager"], e["to_manager"]) for e in history.json()] == [
        ("tier_changed", "kam-zhao", "kam-zhao"),
        ("reassigned", "kam-li", "kam-zhao"),
        ("designated", None, "kam-li"),
    ]
    page = await service.http.get(f"{KA}/{cid}/history", params={"offset": 1, "limit": 1}, headers=SUPERVISOR)
    assert [e["change"] for e in page.json()] == ["reassigned"]
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("3", "1")

    published = await key_account_events(service, boss, expect=5)
    assert [(e.data["change"], e.data["from_manager"], e.data["account_manager"]) for e in published] == [
        ("designated", None, "kam-li"),
        ("reassigned", "kam-li", "kam-zhao"),
        ("tier_changed", "kam-zhao", "kam-zhao"),
    ]


async def test_revocation_clears_the_designation_and_is_repeat_safe(service, boss):
    cid = await known_customer(service, boss, "C8031")
    assert (await designate(service, cid, manager="kam-li")).status_code == 200

    r = await service.http.delete(f"{KA}/{cid}", params={"reason": "Contract ended"}, headers=SUPERVISOR)
    assert r.status_code == 200, r.text
    assert r.json() == {"customer_id": cid, "key_account": False, "tier": None, "account_manager": None}
    assert (await service.http.delete(f"{KA}/{cid}", headers=SUPERVISOR)).json() == r.json()
    assert_problem(await service.http.get(f"{CUSTOMERS}/{cid}", headers=kam("kam-li")), 404)

    history = (await service.http.get(f"{KA}/{cid}/history", headers=SUPERVISOR)).json()
    assert [(e["change"], e["from_manager"], e["reason"]) for e in history] == [
        ("revoked", "kam-li", "Contract ended"),
        ("designated", None, "Group contract signed"),
    ]
    published = await key_account_events(service, boss, expect=4)
    assert [(e.data["change"], e.data["key_account"], e.data["tier"]) for e in published] == [
        ("designated", True, "gold"),
        ("revoked", False, None),
    ]
    # reassigning what is no longer a key account is a conflict
    r = await service.http.post(
        f"{KA}/{cid}/reassign", json={"to_manager": "kam-zhao", "reason": "x" * 3}, headers=SUPERVISOR
    )
    assert_problem(r, 409, "customer_id")


async def test_portfolios_and_the_key_account_list(service, boss):
    a = await known_customer(service, boss, "C8041", name="华为终端有限公司")
    b = await known_customer(service, boss, "C8042")
    c = await known_customer(service, boss, "C8043")
    await designate(service, a, tier="strategic", manager="kam-li")
    await designate(service, b, tier="gold", manager="kam-li")
    await designate(service, c, tier="gold", manager="kam-zhao")

    own = await service.http.get(f"{KA}/portfolio", headers=kam("kam-li"))
    assert own.status_code == 200, own.text
    assert own.headers["X-Total-Count"] == "2"
    assert own.json()[0] == {
        "customer_id": a,
        "name": "华为终端有限公司",
        "tier": "strategic",
        "account_manager": "kam-li",
        "status": "active",
        "active_lines": 1,
        "arpu": None,
        "value_tier": None,
    }
    assert [row["customer_id"] for row in own.json()] == [a, b]
    page = await service.http.get(f"{KA}/portfolio", params={"limit": 1, "offset": 1}, headers=kam("kam-li"))
    assert [row["customer_id"] for row in page.json()] == [b]
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("2", "1")

    assert_problem(
        await service.http.get(f"{KA}/portfolio", params={"manager": "kam-zhao"}, headers=kam("kam-li")), 403
    )
    theirs = await service.http.get(f"{KA}/portfolio", params={"manager": "kam-zhao"}, headers=SUPERVISOR)
    assert [row["customer_id"] for row in theirs.json()] == [c]
    assert_problem(await service.http.get(f"{KA}/portfolio", headers=SUPERVISOR), 422, "manager")
    assert_problem(await service.http.get(f"{KA}/portfolio"), 403)

    gold = await service.http.get(KA, params={"tier": "gold"}, headers=ADMIN)
    assert [row["customer_id"] for row in gold.json()] == [b, c]
    assert gold.headers["X-Total-Count"] == "2"
    lis_gold = await service.http.get(KA, params={"tier": "gold", "manager": "kam-li"}, headers=SUPERVISOR)
    assert [row["customer_id"] for row in lis_gold.json()] == [b]
    assert_problem(await service.http.get(KA, params={"tier": "platinum"}, headers=SUPERVISOR), 422, "tier")
    assert_problem(await service.http.get(KA, headers=kam("kam-li")), 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tier": "platinum", "account_manager": "kam-li", "reason": "why not"}, "tier"),
        ({"tier": "gold", "account_manager": "", "reason": "why not"}, "account_manager"),
        ({"tier": "gold", "reason": "why not"}, "account_manager"),
        ({"tier": "gold", "account_manager": "kam-li", "reason": "x"}, "reason"),
        ({"tier": "gold", "account_manager": "kam-li", "reason": "why not", "vip": True}, "vip"),
    ],
)
async def test_bad_designations_are_problems_naming_the_field(service, boss, body, field):
    cid = await known_customer(service, boss, "C8051")
    assert_problem(await service.http.put(f"{KA}/{cid}", json=body, headers=SUPERVISOR), 422, field)


async def test_only_supervisors_decide_and_strangers_are_refused(service, boss):
    cid = await known_customer(service, boss, "C8061")
    body = {"tier": "gold", "account_manager": "kam-li", "reason": "Group contract"}
    assert_problem(await service.http.put(f"{KA}/{cid}", json=body), 403)
    assert_problem(await service.http.put(f"{KA}/{cid}", json=body, headers=kam("kam-li")), 403)
    r = await service.http.put(f"{KA}/{cid}", json=body, headers={"Authorization": ""})
    assert_problem(r, 401)
    assert_problem(await service.http.put(f"{KA}/C404", json=body, headers=SUPERVISOR), 404, "customer_id")
    assert_problem(await service.http.delete(f"{KA}/{cid}"), 403)
    assert_problem(await service.http.post(f"{KA}/{cid}/reassign", json={"to_manager": "x", "reason": "abc"}), 403)
    assert await key_account_events(service, boss, expect=2) == []
