"""TMF621 troubleTicket over HTTP: create with every member, strict bodies whose errors name the field, the list's
filters, sort, `fields=`, paging and counts, merge-patch, delete, and problem+json for every refusal."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from crm_kit.testing import assert_problem, bearer
from crm_ticketing.models import SlaClockRow, TicketNote, TicketStatusChange, TicketTransfer

TICKETS = "/tmf-api/troubleTicket/v4/troubleTicket"
ALWAYS = {"id", "href", "@type", "@baseType"}
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
ADMIN = bearer("admin-1", roles=("admin",))


async def test_create_answers_201_with_location_and_every_tmf_member(service):
    body = service.body(
        relatedParty=[
            {"id": "C110000012345", "role": "customer", "@referredType": "Individual", "name": "张三"},
            {"id": "agent-0007", "role": "agent", "@referredType": "Individual", "name": "王五"},
            {"id": "P-77", "role": "reporter", "@referredType": "Individual", "name": "李四"},
        ]
    )
    r = await service.http.post(TICKETS, json=body)

    assert r.status_code == 201, r.text
    ticket = r.json()
    assert re.fullmatch(r"TT[0-9A-Z]{20}", ticket["id"]), ticket["id"]
    assert ticket["href"] == f"{TICKETS}/{ticket['id']}" == r.headers["Location"]
    monday_ten = "2026-11-23T10:00:00+08:00"
    assert {k: v for k, v in ticket.items() if k not in ("id", "href")} == {
        "name": "流量费用异常",
        "description": "本月账单多扣30元流量费, 客户称未使用",
        "severity": "minor",
        "priority": "medium",
        "ticketType": "complaint",
        "status": "acknowledged",
        "statusChangeDate": monday_ten,
        "statusChangeReason": None,
        "statusChange": [{"status": "acknowledged", "changeDate": monday_ten, "changeReason": None}],
        "relatedParty": [
            {
                "id": "C110000012345",
                "href": "/tmf-api/customerManagement/v4/customer/C110000012345",
                "name": "张三",
                "role": "customer",
                "@referredType": "Individual",
            },
            {"id": "P-77", "href": None, "name": "李四", "role": "reporter", "@referredType": "Individual"},
            {"id": "agent-0007", "href": None, "name": None, "role": "agent", "@referredType": "Individual"},
        ],
        "relatedEntity": [
            {"id": "B202611-0042", "href": None, "name": None, "role": "disputedBill", "@referredType": "CustomerBill"},
            {
                "id": "S0042",
                "href": None,
                "name": "138****0042",
                "role": "affectedLine",
                "@referredType": "Subscription",
            },
        ],
        "note": [
            {"id": ticket["note"][0]["id"], "author": "agent-0001", "date": monday_ten, "text": "客户要求退还差额"}
        ],
        "attachment": [
            {
                "id": "DOC-7",
                "href": None,
                "name": "bill.pdf",
                "description": None,
                "url": "https://docs.crm.example/DOC-7",
                "mimeType": "application/pdf",
            }
        ],
        "channel": {"id": "hotline", "name": "10086"},
        "creationDate": monday_ten,
        "lastUpdate": monday_ten,
        "expectedResolutionDate": None,
        "resolutionDate": None,
        "requestedResolutionDate": "2026-11-27T18:00:00+08:00",
        "externalIdentifier": [{"id": "MIIT-2026-000123", "owner": "MIIT", "externalIdentifierType": "regulatorCase"}],
        "troubleTicketRelationship": [],
        "@type": "TelecomTroubleTicket",
        "@baseType": "TroubleTicket",
        "@schemaLocation": None,
        "category": "billing_dispute",
        "queue": "billing",
        "assignee": "agent-0007",
        "slaPolicyId": "billing_dispute:medium:standard",
        # business hours: 2 h from Monday 10:00; 2 business days (18 h) end on Wednesday 10:00
        "firstResponseDueDate": "2026-11-23T12:00:00+08:00",
        "resolutionDueDate": "2026-11-25T10:00:00+08:00",
        "slaBreached": False,
        "escalationLevel": 0,
        "csat": None,
    }
    assert await service.get(ticket["id"]) == ticket


async def test_the_smallest_ticket_takes_the_defaults(service):
    body = {
        "description": "家里宽带断网",
        "ticketType": "trouble",
        "category": "broadband_fault",
        "relatedParty": [{"id": "C2", "role": "customer", "@referredType": "Customer"}],
    }
    r = await service.http.post(TICKETS, json=body)
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert (ticket["priority"], ticket["channel"], ticket["name"], ticket["assignee"]) == (
        "medium",
        {"id": "hotline", "name": None},
        None,
        None,
    )
    assert ticket["note"] == ticket["relatedEntity"] == ticket["attachment"] == []
    # a medium broadband fault counts round the clock: 2 h and 24 h
    assert ticket["slaPolicyId"] == "broadband_fault:medium:standard"
    assert ticket["firstResponseDueDate"] == "2026-11-23T12:00:00+08:00"
    assert ticket["resolutionDueDate"] == "2026-11-24T10:00:00+08:00"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"status": "inProgress"}, "status", "set by the server"),
        ({"slaPolicyId": "vip"}, "slaPolicyId", "set by the server"),
        ({"category": "roaming"}, "category", "Input should be"),
        ({"description": "长" * 4001}, "description", "at most 4000"),
        ({"requestedResolutionDate": "2026-11-27T18:00:00"}, "requestedResolutionDate", "timezone"),
        (
            {"relatedParty": [{"id": "agent-1", "role": "agent", "@referredType": "Individual"}]},
            "relatedParty",
            "customer",
        ),
        ({"relatedParty": [{"id": "C 1", "role": "customer", "@referredType": "Customer"}]}, "relatedParty[0].id", ""),
        ({"channel": {"id": "fax"}}, "channel.id", "Input should be"),
        ({"requestedResolutionDate": "9999-12-31T23:00:00-05:00"}, "requestedResolutionDate", "years 1 and 9999"),
        ({"description": "账单\u0000有误"}, "description", "NUL"),
        (
            {
                "relatedEntity": [
                    {"id": "B1", "role": "disputedBill", "@referredType": "CustomerBill", "name": "\u0000"}
                ]
            },
            "relatedEntity[0].name",
            "NUL",
        ),
    ],
)
async def test_a_bad_body_is_a_422_naming_the_field(service, changes, field, says):
    r = await service.http.post(TICKETS, json=service.body(**changes))
    problem = assert_problem(r, 422, field)
    assert says in problem["detail"], problem


async def test_two_assignees_a_broken_body_and_a_missing_one_are_refused(service):
    agents = [
        {"id": "C1", "role": "customer", "@referredType": "Customer"},
        {"id": "agent-1", "role": "agent", "@referredType": "Individual"},
        {"id": "agent-2", "role": "agent", "@referredType": "Individual"},
    ]
    assert_problem(await service.http.post(TICKETS, json=service.body(relatedParty=agents)), 422, "relatedParty")
    broken = await service.http.post(TICKETS, content=b'{"description": ', headers={"Content-Type": "application/json"})
    assert assert_problem(broken, 400)["type"].endswith("malformed-body")
    assert_problem(await service.http.post(TICKETS), 422)
    _, total = await service.list()
    assert total == 0


@pytest.fixture
async def population(service):
    """Five tickets five minutes apart from Monday 10:00; the third taken up by broadband-l2, the fourth cancelled."""
    specs = [
        ("C1", "billing_dispute", "medium", "hotline", "complaint"),
        ("C2", "network_coverage", "critical", "app", "trouble"),
        ("C1", "broadband_fault", "high", "wechat", "inquiry"),
        ("C3", "staff_complaint", "low", "store", "complaint"),
        ("C2", "billing_dispute", "high", "web", "complaint"),
    ]
    ids = []
    for customer, category, priority, channel, kind in specs:
        created = await service.create(
            customer, category=category, priority=priority, channel={"id": channel}, ticketType=kind
        )
        ids.append(created["id"])
        service.clock.advance(minutes=5)
    r = await service.http.put("/api/v1/queues/broadband-l2", json={"name": "宽带二线"}, headers=SUPERVISOR)
    assert r.status_code == 201, r.text
    r = await service.patch(ids[2], {"status": "inProgress", "queue": "broadband-l2", "assignee": "agent-0009"})
    assert r.status_code == 200, r.text
    service.clock.advance(minutes=1)
    await service.move(ids[3], "cancelled", "客户撤诉")
    return ids


async def _ids(service, **params: str) -> tuple[list[str], int]:
    items, total = await service.list(**params)
    return [t["id"] for t in items], total


async def test_filters_each_narrow_the_list_and_the_total(service, population):
    t1, t2, t3, t4, t5 = population
    assert await _ids(service) == ([t5, t4, t3, t2, t1], 5)
    assert await _ids(service, status="acknowledged") == ([t5, t2, t1], 3)
    assert await _ids(service, status="acknowledged,inProgress") == ([t5, t3, t2, t1], 4)
    assert await _ids(service, priority="high") == ([t5, t3], 2)
    assert await _ids(service, category="billing_dispute") == ([t5, t1], 2)
    assert await _ids(service, customerId="C1") == ([t3, t1], 2)
    assert await _ids(service, **{"relatedParty.id": "C1"}) == ([t3, t1], 2)
    assert await _ids(service, **{"relatedParty.id": "C1", "customerId": "C1", "priority": "high"}) == ([t3], 1)
    assert await _ids(service, queue="broadband-l2") == ([t3], 1)
    assert await _ids(service, assignee="agent-0009") == ([t3], 1)
    assert await _ids(service, channel="wechat") == ([t3], 1)
    assert await _ids(service, ticketType="complaint") == ([t5, t4, t1], 3)
    assert await _ids(service, **{"creationDate.gt": "2026-11-23T10:05:00+08:00"}) == ([t5, t4, t3], 3)
    assert await _ids(service, **{"creationDate.lt": "2026-11-23T02:10:00Z"}) == ([t2, t1], 2)
    window = {"creationDate.gt": "2026-11-23T10:00:00+08:00", "creationDate.lt": "2026-11-23T10:20:00+08:00"}
    assert await _ids(service, **window) == ([t4, t3, t2], 3)
    assert await _ids(service, customerId="C404") == ([], 0)


async def test_sort_by_the_allowed_keys_with_the_id_breaking_ties(service, population):
    t1, t2, t3, t4, t5 = population
    assert await _ids(service, sort="creationDate") == ([t1, t2, t3, t4, t5], 5)
    assert await _ids(service, sort="-creationDate") == ([t5, t4, t3, t2, t1], 5)
    assert await _ids(service, sort="priority") == ([t2, t3, t5, t1, t4], 5)
    assert await _ids(service, sort="-priority,-creationDate") == ([t4, t1, t5, t3, t2], 5)
    assert await _ids(service, sort="status,creationDate") == ([t1, t2, t5, t4, t3], 5)
    assert await _ids(service, sort="-lastUpdate", limit="2") == ([t4, t3], 5)


async def test_paging_with_total_and_result_counts(service, population):
    t1, t2, t3, t4, t5 = population
    assert await _ids(service, limit="2") == ([t5, t4], 5)
    assert await _ids(service, offset="2", limit="2") == ([t3, t2], 5)
    assert await _ids(service, offset="4", limit="2") == ([t1], 5)
    assert await _ids(service, offset="10") == ([], 5)
    assert await _ids(service, limit="1000", status="cancelled") == ([t4], 1)


async def test_fields_keeps_the_named_attributes_and_the_identity(service, population):
    items, _ = await service.list(fields="status,priority", limit="2")
    assert [set(item) for item in items] == [ALWAYS | {"status", "priority"}] * 2
    one = await service.get(population[0], fields="slaPolicyId")
    assert one == {
        "id": population[0],
        "href": f"{TICKETS}/{population[0]}",
        "@type": "TelecomTroubleTicket",
        "@baseType": "TroubleTicket",
        "slaPolicyId": "billing_dispute:medium:standard",
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"sort": "colour"}, "sort"),
        ({"sort": "-creationDate,customerName"}, "sort"),
        ({"fields": "status,colour"}, "fields"),
        ({"status": "open"}, "status"),
        ({"priority": "urgent"}, "priority"),
        ({"ticketType": "incident"}, "ticketType"),
        ({"creationDate.gt": "2026-11-23T10:00:00"}, "creationDate.gt"),
        ({"customerId": "C1", "relatedParty.id": "C2"}, "relatedParty.id"),
        ({"offset": str(10**20)}, "offset"),
        ({"creationDate.gt": "0001-01-01T00:00:00+01:00"}, "creationDate.gt"),
        ({"customerId": "C\u00001"}, "customerId"),
        ({"assignee": "agent 1"}, "assignee"),
        ({"queue": "billing\u0000"}, "queue"),
    ],
)
async def test_a_list_it_cannot_answer_is_a_422(service, params, field):
    assert_problem(await service.http.get(TICKETS, params=params), 422, field)


async def test_unknown_ids_are_404_problems(service):
    missing = f"{TICKETS}/TT00000000000000000000"
    assert_problem(await service.http.get(missing), 404, "id")
    assert_problem(await service.patch("TT00000000000000000000", {"priority": "high"}), 404, "id")
    assert_problem(await service.http.delete(missing, headers=ADMIN), 404, "id")
    assert_problem(await service.http.get(f"{TICKETS}/{'T' * 65}"), 422)
    assert_problem(await service.http.get(f"{TICKETS}/TT%00"), 422)


async def test_who_may_read_write_and_delete(service):
    ticket = (await service.create())["id"]
    one = f"{TICKETS}/{ticket}"
    assert_problem(await service.http.get(TICKETS, headers={"Authorization": ""}), 401)
    marketer = bearer("mkt-1", roles=("marketer",))
    assert_problem(await service.http.get(one, headers=marketer), 403)
    kam = bearer("kam-li", roles=("key_account_manager",))
    assert_problem(await service.http.post(TICKETS, json=service.body(), headers=kam), 403)
    assert_problem(await service.patch(ticket, {"priority": "high"}, **kam), 403)
    assert (await service.http.get(one, headers=SUPERVISOR)).status_code == 200

    assert_problem(await service.http.delete(one), 403)
    assert_problem(await service.http.delete(one, headers=SUPERVISOR), 403)
    assert (await service.http.get(one)).status_code == 200


async def test_an_admin_deletes_a_ticket_and_everything_of_it(service):
    doomed = (await service.create())["id"]
    r = await service.patch(doomed, {"status": "inProgress", "assignee": "agent-0002", "note": [{"text": "已联系"}]})
    assert r.status_code == 200, r.text
    kept = (await service.create())["id"]

    r = await service.http.delete(f"{TICKETS}/{doomed}", headers=ADMIN)
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(await service.http.get(f"{TICKETS}/{doomed}"), 404)
    assert await _ids(service) == ([kept], 1)
    async with service.database() as db, db.sessions() as session:
        for model in (TicketStatusChange, TicketNote, TicketTransfer, SlaClockRow):
            counts = dict(
                (await session.execute(select(model.ticket_id, func.count()).group_by(model.ticket_id))).all()
            )
            assert doomed not in counts, model
            assert kept in counts or model is TicketTransfer, model


async def test_merge_patch_sets_clears_appends_and_replaces(service):
    ticket = await service.create()
    service.clock.advance(minutes=30)
    r = await service.patch(
        ticket["id"],
        {
            "description": "本月账单多扣30元流量费; 已核实为套餐外流量",
            "severity": None,
            "name": None,
            "priority": "high",
            "expectedResolutionDate": "2026-11-24T18:00:00+08:00",
            "relatedEntity": [{"id": "B202611-0043", "role": "disputedBill", "@referredType": "CustomerBill"}],
            "attachment": [],
            "note": [{"text": "已致电客户说明"}, {"text": "客户同意等待核查"}],
        },
        **SUPERVISOR,
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["description"] == "本月账单多扣30元流量费; 已核实为套餐外流量"
    assert (patched["severity"], patched["name"], patched["priority"]) == (None, None, "high")
    assert patched["expectedResolutionDate"] == "2026-11-24T18:00:00+08:00"
    assert [e["id"] for e in patched["relatedEntity"]] == ["B202611-0043"]
    assert patched["attachment"] == []
    assert [(n["author"], n["text"]) for n in patched["note"]] == [
        ("agent-0001", "客户要求退还差额"),
        ("sup-wang", "已致电客户说明"),
        ("sup-wang", "客户同意等待核查"),
    ]
    assert patched["note"][1]["date"] == "2026-11-23T10:30:00+08:00"
    assert patched["lastUpdate"] == "2026-11-23T10:30:00+08:00"
    # the SLA promised when the ticket was opened stands; only the status moves its clocks
    assert patched["slaPolicyId"] == ticket["slaPolicyId"]
    assert patched["resolutionDueDate"] == ticket["resolutionDueDate"]
    assert (patched["status"], patched["statusChange"]) == (ticket["status"], ticket["statusChange"])
    assert await service.get(ticket["id"]) == patched


async def test_a_transfer_is_recorded_and_shown_as_the_agent(service):
    ticket = (await service.create())["id"]
    r = await service.http.put("/api/v1/queues/billing-l2", json={"name": "计费二线"}, headers=SUPERVISOR)
    assert r.status_code == 201, r.text
    service.clock.advance(minutes=5)
    moved = (await service.patch(ticket, {"queue": "billing-l2", "assignee": "agent-0002"})).json()
    assert (moved["queue"], moved["assignee"]) == ("billing-l2", "agent-0002")
    assert {"id": "agent-0002", "href": None, "name": None, "role": "agent", "@referredType": "Individual"} in moved[
        "relatedParty"
    ]
    service.clock.advance(minutes=5)
    again = await service.patch(ticket, {"queue": "billing-l2"}, **SUPERVISOR)
    assert again.json()["lastUpdate"] == moved["lastUpdate"]  # nothing changed
    back = (await service.patch(ticket, {"assignee": None}, **SUPERVISOR)).json()
    assert (back["queue"], back["assignee"]) == ("billing-l2", None)
    assert [p["role"] for p in back["relatedParty"]] == ["customer"]
    async with service.database() as db, db.sessions() as session:
        transfers = (
            await session.scalars(select(TicketTransfer).where(TicketTransfer.ticket_id == ticket).order_by("seq"))
        ).all()
    assert [
        (t.from_queue, t.to_queue, t.from_assignee, t.to_assignee, t.transferred_by, t.transferred_at.isoformat())
        for t in transfers
    ] == [
        (None, "billing", None, None, "agent-0001", "2026-11-23T02:00:00+00:00"),
        ("billing", "billing-l2", None, "agent-0002", "agent-0001", "2026-11-23T02:05:00+00:00"),
        ("billing-l2", "billing-l2", "agent-0002", None, "sup-wang", "2026-11-23T02:10:00+00:00"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"priority": None}, "priority"),
        ({"queue": None}, "queue"),
        ({"statusChangeReason": "客户要求"}, "statusChangeReason"),
        ({"relatedParty": []}, "relatedParty"),
        ({"statusChange": []}, "statusChange"),
        ({"status": "fixed"}, "status"),
        ({"expectedResolutionDate": "0001-01-01T00:00:00+01:00"}, "expectedResolutionDate"),
        ({"note": [{"text": "\u0000"}]}, "note[0].text"),
    ],
)
async def test_a_bad_patch_is_a_422(service, body, field):
    ticket = (await service.create())["id"]
    assert_problem(await service.patch(ticket, body), 422, field)


async def test_patch_takes_merge_patch_or_json_and_nothing_else(service):
    ticket = (await service.create())["id"]
    plain = await service.http.patch(f"{TICKETS}/{ticket}", json={"priority": "low"})
    assert plain.status_code == 200, plain.text
    assert plain.json()["priority"] == "low"
    json_patch = await service.http.patch(
        f"{TICKETS}/{ticket}",
        json=[{"op": "replace", "path": "/priority", "value": "high"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_problem(json_patch, 415, "Content-Type")
    assert_problem(await service.patch(ticket, {"priority": "high"}, **{"Content-Type": "text/plain"}), 415)
    assert (await service.get(ticket))["priority"] == "low"
