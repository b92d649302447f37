"""The party model entered in the CRM (客户建档): create, read, merge-patch, and billing account hierarchies,
through HTTP on the real database and broker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_kit.testing import bearer

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
ACCOUNTS = "/api/v1/accounts"
PROBLEM = "urn:telecom-crm:problem:"
ID_CARD = "44030519900101123X"
USCC = "91440300MA5DC12341"
PII = {**bearer("agent-7", roles=("agent",), scopes=("pii:read",)), "X-Access-Reason": "ticket T-1001"}


def person(**changes: Any) -> dict[str, Any]:
    return {
        "name": "王芳",
        "customerType": "individual",
        "region": "GD-SZ",
        "idCardNo": ID_CARD,
        "gender": "female",
        "birthDate": "1990-01-01",
        "contactMedium": [
            {"mediumType": "email", "preferred": True, "characteristic": {"emailAddress": "wang.fang@example.cn"}},
            {"mediumType": "phone", "characteristic": {"phoneNumber": "075512345678"}},
            {"mediumType": "postal", "characteristic": {"street1": "深圳市南山区科技园1号"}},
        ],
        "characteristic": [{"name": "preferredLanguage", "value": "zh-CN"}],
        **changes,
    }


def company(**changes: Any) -> dict[str, Any]:
    return {
        "name": "深圳市星河电子有限公司",
        "customerType": "organization",
        "region": "GD-SZ",
        "registrationNo": USCC,
        "industry": "manufacturing",
        **changes,
    }


def traits(resource: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c["value"] for c in resource["characteristic"]}


def problem(r, status: int, field: str, slug: str = "invalid-input") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == PROBLEM + slug
    assert body["field"] == field, body
    assert "Traceback" not in r.text
    return body


async def create(service, body: dict[str, Any]) -> dict[str, Any]:
    r = await service.http.post(CUSTOMERS, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{CUSTOMERS}/{r.json()['id']}"
    return r.json()  # type: ignore[no-any-return]


async def test_create_read_and_the_profile_created_event(service):
    created = await create(service, person())
    cid = created["id"]
    assert cid.startswith("CRM-")
    assert created["name"] == "王芳"
    assert created["status"] == "inactive"  # no line yet: the BOSS activates one later
    assert created["partyType"] == "Individual"
    assert created["engagedParty"]["@referredType"] == "Individual"
    assert traits(created) == {
        "customerType": "individual",
        "region": "GD-SZ",
        "idCardNumber": "440305********123X",
        "gender": "female",
        "birthDate": "1990-01-01",
        "preferredLanguage": "zh-CN",
    }
    assert created["contactMedium"] == [
        {
            "mediumType": "email",
            "preferred": True,
            "characteristic": {"contactType": "email", "emailAddress": "wang.fang@example.cn"},
        },
        {
            "mediumType": "phone",
            "preferred": False,
            "characteristic": {"contactType": "phone", "phoneNumber": "075*****5678"},
        },
        {
            "mediumType": "postal",
            "preferred": False,
            "characteristic": {"contactType": "postal", "street1": "深圳市南山区科技园1号"},
        },
    ]
    assert created["keyAccount"] == {"isKeyAccount": False, "tier": None, "accountManager": None}
    assert created["segments"] == {"valueTier": None, "activityTier": None, "lifecycleStage": None}
    assert created["subscription"] == [] and created["account"] == []

    assert await service.customer(cid) == created

    org = await create(service, company())
    assert org["partyType"] == "Organization"
    assert traits(org)["registrationNo"] == USCC
    assert traits(org)["industry"] == "manufacturing"

    published = await service.profile_events(expect=2)
    # Two customers, two keys: Kafka orders each customer's events, not one customer's against another's.
    assert sorted((key, e.type, e.data["name"], e.data["status"]) for key, e in published) == sorted(
        [
            (cid, "customer.profile.created.v1", "王芳", "inactive"),
            (org["id"], "customer.profile.created.v1", "深圳市星河电子有限公司", "inactive"),
        ]
    )


async def test_numbers_unmask_only_with_pii_read_and_a_reason(service):
    cid = (await create(service, person()))["id"]
    masked = await service.http.get(f"{CUSTOMERS}/{cid}", headers=bearer("agent-7", scopes=("pii:read",)))
    assert traits(masked.json())["idCardNumber"] == "440305********123X"
    assert masked.headers["X-PII-Masked"].startswith("reason-required")

    shown = await service.http.get(f"{CUSTOMERS}/{cid}", headers=PII)
    assert shown.status_code == 200
    assert traits(shown.json())["idCardNumber"] == ID_CARD
    assert shown.json()["contactMedium"][1]["characteristic"]["phoneNumber"] == "075512345678"
    assert "X-PII-Masked" not in shown.headers


async def test_merge_patch_sets_clears_replaces_and_publishes_updated(service):
    cid = (await create(service, person()))["id"]
    patch = {
        "name": "王芳芳",
        "gender": None,
        "contactMedium": [{"mediumType": "mobile", "characteristic": {"phoneNumber": "13912345678"}}],
        "characteristic": [{"name": "vip", "value": "true", "valueType": "boolean"}],
    }
    r = await service.http.patch(
        f"{CUSTOMERS}/{cid}",
        content=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "王芳芳"
    assert traits(body) == {
        "customerType": "individual",
        "region": "GD-SZ",
        "idCardNumber": "440305********123X",
        "birthDate": "1990-01-01",
        "vip": "true",
    }
    assert body["contactMedium"] == [
        {
            "mediumType": "mobile",
            "preferred": False,
            "characteristic": {"contactType": "mobile", "phoneNumber": "139****5678"},
        }
    ]
    assert body["lastUpdate"] >= body["validFor"]["startDateTime"]

    # plain JSON works too; an unchanged value publishes nothing
    same = await service.http.patch(f"{CUSTOMERS}/{cid}", json={"name": "王芳芳"})
    assert same.status_code == 200 and same.json()["lastUpdate"] == body["lastUpdate"]

    published = await service.profile_events(expect=2)
    assert [e.type for _, e in published] == ["customer.profile.created.v1", "customer.profile.updated.v1"]
    assert published[1][1].data["name"] == "王芳芳"
    assert published[1][1].data["total_lines"] == 0

    # the name search key follows the name
    found = await service.http.get(CUSTOMERS, params={"name": "王芳芳"})
    assert [c["id"] for c in found.json()] == [cid]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (person(shoeSize=42), "shoeSize"),
        (person(idCardNo="440305199001011231"), "idCardNo"),  # wrong check digit
        (person(idCardNo="440305199013011234"), "idCardNo"),  # month 13
        (person(idCardNo="12345"), "idCardNo"),
        (person(region="Shenzhen"), "region"),
        (person(customerType="alien"), "customerType"),
        (person(name=""), "name"),
        (person(birthDate="2999-01-01"), "birthDate"),
        (person(registrationNo=USCC), "registrationNo"),
        (company(registrationNo="91440300MA5DC12342"), "registrationNo"),  # wrong check character
        (company(idCardNo=ID_CARD), "idCardNo"),
        (company(gender="male"), "gender"),
        (
            person(contactMedium=[{"mediumType": "email", "characteristic": {"emailAddress": "nope"}}]),
            "contactMedium[0]",
        ),
        (
            person(contactMedium=[{"mediumType": "email", "characteristic": {"phoneNumber": "13912345678"}}]),
            "contactMedium[0]",
        ),
        (person(contactMedium=[{"mediumType": "pigeon", "characteristic": {}}]), "contactMedium[0].mediumType"),
        (person(characteristic=[{"name": "region", "value": "BJ"}]), "characteristic"),
        (person(characteristic=[{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]), "characteristic"),
    ],
)
async def test_bad_create_bodies_are_422_naming_the_field(service, body, field):
    problem(await service.http.post(CUSTOMERS, json=body), 422, field)


async def test_bad_patches_and_unknown_customers(service):
    cid = (await create(service, person()))["id"]
    problem(await service.http.patch(f"{CUSTOMERS}/{cid}", json={"status": "active"}), 422, "status")
    problem(await service.http.patch(f"{CUSTOMERS}/{cid}", json={"customerType": "organization"}), 422, "customerType")
    problem(await service.http.patch(f"{CUSTOMERS}/{cid}", json={"name": None}), 422, "name")
    problem(await service.http.patch(f"{CUSTOMERS}/{cid}", json={"idCardNo": "440305199001011231"}), 422, "idCardNo")
    problem(await service.http.patch(f"{CUSTOMERS}/C-NOPE", json={"name": "x"}), 404, "customer_id", "not-found")
    r = await service.http.patch(
        f"{CUSTOMERS}/{cid}", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"

    reader = bearer("analyst-1", roles=("analyst",))
    r = await service.http.post(CUSTOMERS, json=person(), headers=reader)
    assert r.status_code == 403
    r = await service.http.patch(f"{CUSTOMERS}/{cid}", json={"name": "x"}, headers=reader)
    assert r.status_code == 403
    assert (await service.customer(cid))["name"] == "王芳"


async def open_account(service, **body: Any) -> dict[str, Any]:
    r = await service.http.post(ACCOUNTS, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{ACCOUNTS}/{r.json()['id']}"
    return r.json()  # type: ignore[no-any-return]


async def test_group_account_hierarchy_and_cycle_refusal(service):
    group = (await create(service, company()))["id"]
    branch_customer = (await create(service, company(name="星河电子广州分公司", registrationNo=None)))["id"]
    person_id = (await create(service, person()))["id"]

    top = await open_account(service, customerId=group, name="星河集团总账户", accountType="group")
    assert top["parentId"] is None and top["children"] == [] and top["lines"] == []
    south = await open_account(service, customerId=group, name="华南", accountType="branch", parentId=top["id"])
    gz = await open_account(
        service, customerId=branch_customer, name="广州分公司", accountType="branch", parentId=south["id"]
    )

    r = await service.http.get(f"{ACCOUNTS}/{top['id']}")
    assert r.json()["children"] == [south["id"]]
    assert r.json()["customerId"] == group

    tree = (await service.http.get(f"{ACCOUNTS}/{top['id']}/hierarchy")).json()
    assert tree["id"] == top["id"] and tree["lineCount"] == 0
    assert [c["id"] for c in tree["children"]] == [south["id"]]
    assert [c["id"] for c in tree["children"][0]["children"]] == [gz["id"]]
    assert tree["children"][0]["children"][0]["customerId"] == branch_customer

    listed = await service.http.get(f"/api/v1/customers/{group}/accounts")
    assert [a["id"] for a in listed.json()] == sorted([top["id"], south["id"]])
    assert listed.headers["X-Total-Count"] == "2"
    customer = await service.customer(group)
    assert {a["id"] for a in customer["account"]} == {top["id"], south["id"]}

    # no cycles: the top cannot move below its own grandchild
    body = problem(
        await service.http.patch(f"{ACCOUNTS}/{top['id']}", json={"parentId": gz["id"]}), 409, "parentId", "conflict"
    )
    assert "cycle" in body["detail"]
    problem(
        await service.http.patch(f"{ACCOUNTS}/{top['id']}", json={"parentId": top["id"]}), 409, "parentId", "conflict"
    )

    # re-parent, rename, close, detach
    moved = await service.http.patch(
        f"{ACCOUNTS}/{gz['id']}", json={"parentId": top["id"], "name": "广州", "status": "suspended"}
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["parentId"], moved.json()["name"], moved.json()["status"]) == (top["id"], "广州", "suspended")
    tree = (await service.http.get(f"{ACCOUNTS}/{top['id']}/hierarchy")).json()
    assert sorted(c["id"] for c in tree["children"]) == sorted([south["id"], gz["id"]])
    detached = await service.http.patch(f"{ACCOUNTS}/{gz['id']}", json={"parentId": None})
    assert detached.json()["parentId"] is None

    # a parent of a person (not a group customer) belonging to someone else is refused
    mine = await open_account(service, customerId=person_id, name="个人账户", accountType="group")
    problem(
        await service.http.post(
            ACCOUNTS, json={"customerId": group, "name": "x", "accountType": "branch", "parentId": mine["id"]}
        ),
        422,
        "parentId",
    )
    problem(
        await service.http.post(
            ACCOUNTS, json={"customerId": group, "name": "x", "accountType": "branch", "parentId": "A-NONE"}
        ),
        404,
        "account_id",
        "not-found",
    )
    problem(
        await service.http.post(ACCOUNTS, json={"customerId": "C-NONE", "name": "x", "accountType": "group"}),
        422,
        "customerId",
    )
    problem(
        await service.http.post(ACCOUNTS, json={"customerId": group, "name": "x", "accountType": "individual"}),
        422,
        "accountType",
    )
    problem(await service.http.patch(f"{ACCOUNTS}/{gz['id']}", json={"status": "gone"}), 422, "status")
    problem(await service.http.patch(f"{ACCOUNTS}/{gz['id']}", json={"owner": "x"}), 422, "owner")
    problem(await service.http.get(f"{ACCOUNTS}/A-NONE"), 404, "account_id", "not-found")
    problem(await service.http.get(f"{ACCOUNTS}/A-NONE/hierarchy"), 404, "account_id", "not-found")


async def test_hierarchy_depth_is_bounded(service):
    group = (await create(service, company()))["id"]
    chain = [await open_account(service, customerId=group, name="L0", accountType="group")]
    for level in range(1, 10):
        chain.append(
            await open_account(
                service, customerId=group, name=f"L{level}", accountType="branch", parentId=chain[-1]["id"]
            )
        )
    body = problem(
        await service.http.post(
            ACCOUNTS, json={"customerId": group, "name": "L10", "accountType": "branch", "parentId": chain[-1]["id"]}
        ),
        422,
        "parentId",
    )
    assert "10" in body["detail"]
    node = (await service.http.get(f"{ACCOUNTS}/{chain[0]['id']}/hierarchy")).json()
    depth = 0
    while node["children"]:
        node = node["children"][0]
        depth += 1
    assert depth == 9 and node["id"] == chain[-1]["id"] and node["truncated"] is False
