"""Customer search (客户查询): by name, mobile number, ID card, credit code or account, guessed from the term's
shape; exact matches first; numbers masked unless pii:read with a reason; bad terms are 422 naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from crm_kit.testing import bearer

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
SEARCH = "/api/v1/customers/search"
PII = {**bearer("agent-7", roles=("agent",), scopes=("pii:read",)), "X-Access-Reason": "ticket T-2002"}


async def _create(service, **body: Any) -> str:
    r = await service.http.post(CUSTOMERS, json={"customerType": "individual", "region": "GD-SZ", **body})
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


@pytest.fixture
async def people(service) -> dict[str, str]:
    ids = {
        "zs": await _create(service, name="张三", idCardNo="110101199003071233"),
        "zsf": await _create(service, name="张三丰", idCardNo="44030519900101123X"),
        "zw": await _create(service, name="张伟"),
        "acme": await _create(
            service, name="Acme Trading", customerType="organization", registrationNo="91440300MA5DC12341"
        ),
        "acme2": await _create(service, name="ACME", customerType="organization"),
    }
    return ids


async def search(service, headers: dict[str, str] | None = None, **params: Any) -> tuple[str, list[dict[str, Any]]]:
    r = await service.http.get(SEARCH, params=params, headers=headers)
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Result-Count"]) == len(r.json())
    return r.headers["X-Search-By"], r.json()


async def test_by_name_prefix_exact_first_then_by_name(service, people):
    by, hits = await search(service, q="张三")
    assert by == "name"
    assert [h["id"] for h in hits] == [people["zs"], people["zsf"]]
    assert [h["exact"] for h in hits] == [True, False]
    assert hits[0] | {"matched": None} == {
        "id": people["zs"],
        "href": f"{CUSTOMERS}/{people['zs']}",
        "name": "张三",
        "customerType": "individual",
        "status": "inactive",
        "region": "GD-SZ",
        "idCardNo": "110101********1233",
        "registrationNo": None,
        "keyAccount": False,
        "valueTier": None,
        "exact": True,
        "matched": None,
    }
    assert hits[0]["matched"] == {"by": "name", "msisdn": [], "accountId": None}

    # one Chinese character is enough; letter case does not matter; exact names only on request
    assert [h["id"] for h in (await search(service, q="张"))[1]] == [people["zs"], people["zsf"], people["zw"]]
    assert [h["id"] for h in (await search(service, q="acme"))[1]] == [people["acme2"], people["acme"]]
    assert [h["id"] for h in (await search(service, q="张三", match="exact"))[1]] == [people["zs"]]
    assert [h["id"] for h in (await search(service, q="张", limit=2))[1]] == [people["zs"], people["zsf"]]
    assert (await search(service, q="王五"))[1] == []
    assert (await search(service, q="%%"))[1] == []


async def test_by_id_card_and_credit_code_masked_unless_revealed(service, people):
    by, hits = await search(service, q="440305199001")
    assert by == "id_card"
    assert [(h["id"], h["idCardNo"], h["exact"]) for h in hits] == [(people["zsf"], "440305********123X", False)]
    by, hits = await search(service, q="44030519900101123x", headers=PII)
    assert [(h["id"], h["idCardNo"], h["exact"]) for h in hits] == [(people["zsf"], "44030519900101123X", True)]
    assert (await search(service, q="119", by="id_card"))[1] == []

    by, hits = await search(service, q="91440300MA5DC12")
    assert by == "registration_no"
    assert [(h["id"], h["registrationNo"]) for h in hits] == [(people["acme"], "91440300MA5DC12341")]


async def test_by_account_and_by_phone(service, boss, people):
    r = await service.http.post(
        "/api/v1/accounts", json={"customerId": people["zw"], "name": "张伟家庭", "accountType": "group"}
    )
    account = r.json()["id"]
    by, hits = await search(service, q=account[:7])
    assert by == "account"
    assert [(h["id"], h["matched"]["accountId"]) for h in hits] == [(people["zw"], account)]

    at = "2026-11-20T09:30:00+08:00"
    await boss.send(
        boss.activated(people["zw"], "S-ZW-1", "13812345678", at, name="张伟", account="A-ZW-1", id_card_no=None),
        boss.activated(people["zs"], "S-ZS-1", "13812349999", at, name="张三", account="A-ZS-1", id_card_no=None),
    )
    await service.wait_for(people["zs"], lambda c: c["status"] == "active")
    await service.wait_for(people["zw"], lambda c: c["status"] == "active")

    by, hits = await search(service, q="1381234")
    assert by == "phone"
    assert [(h["name"], h["matched"]["msisdn"]) for h in hits] == [("张三", ["138****9999"]), ("张伟", ["138****5678"])]
    _, hits = await search(service, q="13812345678", headers=PII)
    assert [(h["id"], h["matched"]["msisdn"], h["exact"]) for h in hits] == [(people["zw"], ["13812345678"], True)]
    assert [h["id"] for h in (await search(service, q="A-ZS-1", by="account"))[1]] == [people["zs"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "a"}, "q"),
        ({"q": "x" * 65}, "q"),
        ({}, "q"),
        ({"q": "张三", "by": "shoe"}, "by"),
        ({"q": "张三", "match": "fuzzy"}, "match"),
        ({"q": "张三", "limit": "101"}, "limit"),
        ({"q": "138abc", "by": "phone"}, "q"),
        ({"q": "1101A", "by": "id_card"}, "q"),
        ({"q": "91I", "by": "registration_no"}, "q"),
        ({"q": "A 1", "by": "account"}, "q"),
    ],
)
async def test_bad_searches_are_422_naming_the_field(service, params, field):
    r = await service.http.get(SEARCH, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


async def test_search_needs_a_reader_role(service):
    r = await service.http.get(SEARCH, params={"q": "张三"}, headers=bearer("sms-1", roles=("channel",)))
    assert r.status_code == 403
