"""TMF629 list and read conventions: offset/limit with X-Total-Count/X-Result-Count, filters, `fields=`,
and problem+json for what cannot be answered."""

from __future__ import annotations

import pytest

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
PROBLEM = "urn:telecom-crm:problem:"
ALWAYS = {"id", "href", "@type", "@baseType"}


@pytest.fixture
async def population(service, boss):
    """Five customers: two in GD-SZ (one suspended), one in BJ, one with LIKE wildcards in its name, one gone."""
    at = "2026-11-20T09:30:00+08:00"
    people = [
        ("C601", "深圳市腾达科技有限公司", "organization", "GD-SZ"),
        ("C602", "深圳湾酒店", "organization", "GD-SZ"),
        ("C603", "张伟", "individual", "BJ"),
        ("C604", "Acme_100% Trading", "organization", "SH"),
        ("C605", "李娜", "individual", "GD-GZ"),
    ]
    events = []
    for cid, name, kind, region in people:
        n = cid[1:]
        events.append(boss.activated(cid, f"S{n}", f"13800000{n}", at, name=name, customer_type=kind, region=region))
    events.append(boss.line("suspended", "C602", "S602", "13800000602", "2027-01-05T02:00:00+08:00", reason="arrears"))
    events.append(
        boss.line("terminated", "C605", "S605", "13800000605", "2027-01-05T02:00:00+08:00", reason="customer_request")
    )
    await boss.send(*events)
    await service.wait_for("C602", lambda c: c["status"] == "suspended")
    await service.wait_for("C605", lambda c: c["status"] == "inactive")
    for cid, *_ in people:
        await service.wait_for(cid)
    return service


async def _list(service, **params) -> tuple[list[str], int, int]:
    r = await service.http.get(CUSTOMERS, params=params)
    assert r.status_code == 200, r.text
    ids = [c["id"] for c in r.json()]
    assert int(r.headers["X-Result-Count"]) == len(ids)
    return ids, int(r.headers["X-Total-Count"]), int(r.headers["X-Result-Count"])


async def test_offset_limit_filters_and_fields_with_total_and_result_counts(population):
    assert await _list(population) == (["C601", "C602", "C603", "C604", "C605"], 5, 5)
    assert await _list(population, offset="1", limit="2") == (["C602", "C603"], 5, 2)
    assert await _list(population, offset="4", limit="2") == (["C605"], 5, 1)
    assert await _list(population, offset="10") == ([], 5, 0)
    assert await _list(population, limit="1000") == (["C601", "C602", "C603", "C604", "C605"], 5, 5)

    assert await _list(population, status="suspended") == (["C602"], 1, 1)
    assert await _list(population, status="inactive") == (["C605"], 1, 1)
    assert await _list(population, status="active") == (["C601", "C603", "C604"], 3, 3)
    assert await _list(population, region="GD-SZ") == (["C601", "C602"], 2, 2)
    assert await _list(population, region="GD-SZ", status="active") == (["C601"], 1, 1)
    assert await _list(population, region="GD-SZ", limit="1", offset="1") == (["C602"], 2, 1)
    assert await _list(population, name="深圳") == (["C601", "C602"], 2, 2)
    assert await _list(population, name="深圳湾") == (["C602"], 1, 1)
    assert await _list(population, name="Acme_100%") == (["C604"], 1, 1)
    assert await _list(population, name="张伟伟") == ([], 0, 0)
    # LIKE wildcards in the prefix are literal characters
    assert await _list(population, name="%") == ([], 0, 0)
    assert await _list(population, name="_") == ([], 0, 0)
    assert await _list(population, name="Acme_1%0") == ([], 0, 0)
    # the same answer on every database: the prefix ignores letter case
    assert await _list(population, name="acme") == (["C604"], 1, 1)

    # fields= returns what was asked for, plus id, href, @type and @baseType
    r = await population.http.get(CUSTOMERS, params={"fields": "name,status", "region": "GD-SZ"})
    assert r.status_code == 200
    assert r.json() == [
        {
            "id": "C601",
            "href": f"{CUSTOMERS}/C601",
            "@type": "TelecomCustomer",
            "@baseType": "Customer",
            "name": "深圳市腾达科技有限公司",
            "status": "active",
        },
        {
            "id": "C602",
            "href": f"{CUSTOMERS}/C602",
            "@type": "TelecomCustomer",
            "@baseType": "Customer",
            "name": "深圳湾酒店",
            "status": "suspended",
        },
    ]
    one = await population.http.get(f"{CUSTOMERS}/C602", params={"fields": " subscription , status "})
    assert one.status_code == 200
    assert set(one.json()) == ALWAYS | {"subscription", "status"}
    assert one.json()["subscription"][0]["statusReason"] == "arrears"

    for path in (CUSTOMERS, f"{CUSTOMERS}/C601"):
        r = await population.http.get(path, params={"fields": "name,shoeSize"}, headers={"X-Request-ID": "req-fields"})
        body = _assert_problem(r, 422, "invalid-input", "req-fields")
        assert body["field"] == "fields"
        assert "shoeSize" in body["detail"]


def _assert_problem(r, status: int, slug: str, request_id: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + slug
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == request_id == r.headers["X-Request-ID"]
    assert "Traceback" not in r.text
    return body


async def test_bad_parameters_are_422_and_an_unknown_customer_404_problems(service):
    cases = [
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "ten"}, "limit"),
        ({"status": "closed"}, "status"),
        ({"region": "X" * 17}, "region"),
    ]
    for params, field in cases:
        r = await service.http.get(CUSTOMERS, params=params, headers={"X-Request-ID": f"req-{field}"})
        body = _assert_problem(r, 422, "invalid-input", f"req-{field}")
        assert body["field"] == field, params

    r = await service.http.get(f"{CUSTOMERS}/C404404", headers={"X-Request-ID": "req-missing"})
    body = _assert_problem(r, 404, "not-found", "req-missing")
    assert "C404404" in body["detail"]
    assert body["instance"] == f"{CUSTOMERS}/C404404"


async def _entered(service, name: str, kind: str, region: str) -> str:
    r = await service.http.post(CUSTOMERS, json={"name": name, "customerType": kind, "region": region})
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


async def test_sort_and_party_filters(service):
    b = await _entered(service, "Bravo", "organization", "BJ")
    a = await _entered(service, "alpha", "individual", "SH")
    c = await _entered(service, "Charlie", "individual", "BJ")

    assert (await _list(service, sort="name"))[0] == [a, b, c]  # letter case ignored
    assert (await _list(service, sort="-name"))[0] == [c, b, a]
    assert (await _list(service, sort="-createdAt"))[0] == [c, a, b]
    assert (await _list(service, sort="status,-name", offset="1", limit="1")) == ([b], 3, 1)
    assert await _list(service, customerType="individual", sort="name") == ([a, c], 2, 2)
    assert await _list(service, customerType="organization", region="BJ") == ([b], 1, 1)
    assert await _list(service, keyAccount="false", sort="name") == ([a, b, c], 3, 3)
    assert await _list(service, keyAccount="true") == ([], 0, 0)
    assert await _list(service, accountManager="kam-1") == ([], 0, 0)
    # tiers come from the customer's metrics: none computed yet, so no customer is in any tier
    assert await _list(service, valueTier="high") == ([], 0, 0)
    assert await _list(service, segment="SEG-NONE") == ([], 0, 0)
    r = await service.http.get(
        CUSTOMERS, params={"fields": "partyType,segments,keyAccount", "sort": "name", "limit": 1}
    )
    assert r.json() == [
        {
            "id": a,
            "href": f"{CUSTOMERS}/{a}",
            "@type": "TelecomCustomer",
            "@baseType": "Customer",
            "partyType": "Individual",
            "segments": {"valueTier": None, "activityTier": None, "lifecycleStage": None},
            "keyAccount": {"isKeyAccount": False, "tier": None, "accountManager": None},
        }
    ]


async def test_bad_sort_filters_and_limit_are_422(service):
    cases = [
        ({"sort": "shoeSize"}, "sort"),
        ({"sort": "-name,colour"}, "sort"),
        ({"limit": "5000"}, "limit"),
        ({"customerType": "alien"}, "customerType"),
        ({"valueTier": "gold"}, "valueTier"),
        ({"activityTier": "x"}, "activityTier"),
        ({"lifecycleStage": "dead"}, "lifecycleStage"),
        ({"keyAccount": "maybe"}, "keyAccount"),
    ]
    for params, field in cases:
        r = await service.http.get(CUSTOMERS, params=params, headers={"X-Request-ID": f"req-{field}"})
        body = _assert_problem(r, 422, "invalid-input", f"req-{field}")
        assert body["field"] == field, params
