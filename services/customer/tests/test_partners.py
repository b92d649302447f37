"""A partner (代理商/渠道) sees only the customers it brought in — those with a line whose dealer code is the partner's
id — on the customer routes, lists, searches and the 360 view; everyone else is not there for it, and it changes
nothing."""

from __future__ import annotations

from typing import Any

from crm_kit.testing import bearer

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
API = "/api/v1/customers"


def partner(partner_id: str | None) -> dict[str, str]:
    return bearer("partner-app", roles=("partner",), **({"partner_id": partner_id} if partner_id else {}))


def sold(boss: Any, cid: str, msisdn: str, dealer: str | None) -> Any:
    event = boss.activated(cid, f"S{cid}", msisdn, "2026-10-01T09:00:00+08:00")
    if dealer:
        event.data["dealer_code"] = dealer
    return event


async def test_a_partner_sees_only_the_customers_it_brought_in(service, boss):
    await boss.send(
        sold(boss, "C8101", "13900008101", "DLR-GD-001"),
        sold(boss, "C8102", "13900008102", "DLR-GD-002"),
        sold(boss, "C8103", "13900008103", None),
    )
    for cid in ("C8101", "C8102", "C8103"):
        await service.wait_for(cid)

    ours = partner("DLR-GD-001")
    assert (await service.http.get(f"{CUSTOMERS}/C8101", headers=ours)).status_code == 200
    assert (await service.http.get(f"{API}/C8101/view360", headers=ours)).status_code == 200
    for other in ("C8102", "C8103"):
        for path in (f"{CUSTOMERS}/{other}", f"{API}/{other}/view360", f"{API}/{other}/consents"):
            r = await service.http.get(path, headers=ours)
            assert r.status_code == 404, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    listed = await service.http.get(CUSTOMERS, headers=ours)
    assert [c["id"] for c in listed.json()] == ["C8101"] and listed.headers["X-Total-Count"] == "1"
    found = await service.http.get(f"{API}/search", params={"q": "139000081"}, headers=ours)
    assert [h["id"] for h in found.json()] == ["C8101"], "a search finds only its own"

    nobody = await service.http.get(CUSTOMERS, headers=partner(None))
    assert nobody.json() == [], "a partner token without a partner id brings in no one"
    assert (await service.http.patch(f"{CUSTOMERS}/C8101", json={"name": "王芳"}, headers=ours)).status_code == 403
    staff = bearer("agent-7", roles=("agent", "partner"), partner_id="DLR-GD-001")
    assert (await service.http.get(f"{CUSTOMERS}/C8102", headers=staff)).status_code == 200, "staff see everyone"
