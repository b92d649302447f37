"""Issue 3 end to end, through the gateway only: the BOSS feeds customers, agents search them and open the 360 view
(客户360视图), agents enter organisations with their account hierarchy and consents, supervisors name key accounts
(大客户) and their managers (客户经理), marketers build segments (客户分群), privacy officers export, merge and
erase (PIPL) — each caller with their own bearer token, on the real broker and database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from crm_kit.events import CloudEvent, load_contracts
from crm_kit.settings import find_contracts_dir
from crm_kit.testing import bearer, boss_push, eventually, read_topic

CUSTOMERS = "/tmf-api/customerManagement/v4/customer"
SEARCH = "/api/v1/customers/search"
ACCOUNTS = "/api/v1/accounts"
SEGMENTS = "/api/v1/segments"
KEY_ACCOUNTS = "/api/v1/key-accounts"
PRIVACY = "/api/v1/privacy"
PROBLEM = "application/problem+json"
SUPERVISOR = bearer("sup-wang", roles=("supervisor",))
MARKETER = bearer("mkt-01", roles=("marketer",))
PII_AGENT = {**bearer("agent-7", roles=("agent",), scopes=("pii:read",)), "X-Access-Reason": "ticket T-3001"}
PLAN_129 = {"code": "5G-ULT-129", "name": "5G畅享套餐129元", "monthly_fee_fen": 12900}
PLAN_199 = {"code": "5G-ULT-199", "name": "5G畅享套餐199元", "monthly_fee_fen": 19900}
ID_CARD = "110105198803120516"
USCC = "91440300MA5DC12341"


# --- what the BOSS pushes ---------------------------------------------------------------------------------------------


def record(event_id: str, event_type: str, **data: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "data": data}


def activated(cid: str, line: str, msisdn: str, name: str, region: str, plan: dict[str, Any], at: str) -> dict:
    return record(
        f"BOSS-ACT-{line}",
        "subscription.activated",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        subscription_id=line,
        msisdn=msisdn,
        occurred_at=at,
        customer={"name": name, "type": "individual", "region": region, "id_card_no": ID_CARD},
        plan=plan,
        payment_mode="postpaid",
    )


def invoice(cid: str, period: str, fen: int) -> dict[str, Any]:
    """The bill of `period`, issued on the 1st of the next month, due on the 20th."""
    year, month = (int(p) for p in period.split("-"))
    issued = date(year + month // 12, month % 12 + 1, 1)
    return record(
        f"BOSS-INV-{cid}-{period}",
        "invoice.issued",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        occurred_at=f"{issued}T02:00:00+08:00",
        invoice_id=f"INV-{cid}-{period}",
        billing_period=period,
        issued_at=f"{issued}T02:00:00+08:00",
        due_date=str(issued.replace(day=20)),
        currency="CNY",
        amount_due_fen=fen,
        items=[{"code": "MONTHLY_FEE", "description": "月租", "amount_fen": fen}],
    )


def paid(cid: str, period: str, fen: int, at: str) -> dict[str, Any]:
    return record(
        f"BOSS-PAY-{cid}-{period}",
        "payment.received",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        occurred_at=at,
        payment_id=f"PAY-{cid}-{period}",
        amount_fen=fen,
        channel="wechat_pay",
        invoice_id=f"INV-{cid}-{period}",
        paid_at=at,
    )


def overdue(cid: str, period: str, fen: int, at: str, due: str, days: int) -> dict[str, Any]:
    return record(
        f"BOSS-OVD-{cid}-{period}",
        "payment.overdue",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        occurred_at=at,
        invoice_id=f"INV-{cid}-{period}",
        amount_overdue_fen=fen,
        days_overdue=days,
        due_date=due,
    )


def used(cid: str, line: str, msisdn: str, day: date, voice: int, sms: int, data_mb: int) -> dict[str, Any]:
    return record(
        f"BOSS-USE-{line}-{day}",
        "usage.recorded",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        subscription_id=line,
        msisdn=msisdn,
        occurred_at=f"{day}T03:15:00+08:00",
        usage_date=str(day),
        voice_minutes=voice,
        sms_count=sms,
        data_mb=data_mb,
        roaming=False,
    )


def yesterday() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=1)


# --- the people the BOSS knows ----------------------------------------------------------------------------------------

ZHAO, QIAN, SUN = "C300001", "C300002", "C300003"
LINES = {ZHAO: ("S300001", "13812340001"), QIAN: ("S300002", "13812340002"), SUN: ("S300003", "13912340003")}


def population() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three customers: 赵敏 (Beijing, two lines, big bills, one paid on time and one overdue), 钱进 (Beijing, small
    bills, paid), 孙丽 (Shanghai, mid bills). Activations first, then what follows from them."""
    lines = [
        activated(ZHAO, "S300001", "13812340001", "赵敏", "BJ", PLAN_129, "2026-06-01T09:30:00+08:00"),
        activated(ZHAO, "S300011", "13912340011", "赵敏", "BJ", PLAN_199, "2026-07-01T10:00:00+08:00"),
        activated(QIAN, "S300002", "13812340002", "钱进", "BJ", PLAN_129, "2026-06-02T09:30:00+08:00"),
        activated(SUN, "S300003", "13912340003", "孙丽", "SH", PLAN_129, "2026-06-03T09:30:00+08:00"),
    ]
    billing = [
        invoice(ZHAO, "2026-09", 12_900),
        invoice(ZHAO, "2026-10", 32_800),
        paid(ZHAO, "2026-09", 12_900, "2026-10-15T20:01:00+08:00"),
        overdue(ZHAO, "2026-10", 32_800, "2026-11-21T02:00:00+08:00", "2026-11-20", 1),
        used(ZHAO, "S300001", "13812340001", yesterday(), 42, 3, 1024),
        invoice(QIAN, "2026-10", 3_900),
        paid(QIAN, "2026-10", 3_900, "2026-11-05T12:00:00+08:00"),
        invoice(SUN, "2026-10", 9_900),
    ]
    return lines, billing


async def push(gateway: httpx.AsyncClient, records: list[dict[str, Any]]) -> None:
    r = await boss_push(gateway, records)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == len(records)


async def ready(gateway: httpx.AsyncClient) -> bool:
    return (await gateway.get("/health/ready")).status_code == 200


async def view360(gateway: httpx.AsyncClient, cid: str, **headers: str) -> httpx.Response:
    return await gateway.get(f"/api/v1/customers/{cid}/view360", headers=headers)


async def fed(system) -> None:
    """The population pushed through the gateway and applied: every bill, payment and usage day in the 360 view."""
    await eventually(lambda: ready(system.gateway), timeout=20)
    lines, billing = population()
    await push(system.gateway, lines)

    async def known() -> bool:
        r = await system.gateway.get(CUSTOMERS, params={"fields": "id"})
        return r.status_code == 200 and r.headers["X-Total-Count"] == "3"

    await eventually(known, timeout=15)
    await push(system.gateway, billing)

    async def applied() -> bool:
        pages = [(await view360(system.gateway, cid)).json() for cid in (ZHAO, QIAN, SUN)]
        return (
            pages[0]["billing"]["outstanding"]["fen"] == 32_800
            and pages[0]["tiers"]["value_tier"] == "high"  # the customer's metrics, which segment rules read
            and pages[0]["usage_30d"]["voice_minutes"] == 42
            and pages[1]["billing"]["payment_status"] == "good"
            and pages[2]["billing"]["arpu"] is not None
        )

    await eventually(applied, timeout=15)


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """A problem+json answer of `status` naming `field`, carrying the gateway's request id; never a 500."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:telecom-crm:problem:")
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    if field is not None:
        assert body.get("field") == field, body
    return body


async def profile_events(bootstrap: str, until: Callable[[list[CloudEvent]], bool]) -> list[CloudEvent]:
    """customer.profile as published, once `until` holds of it (the relay publishes after each commit), each event
    valid against its contract and keyed by its customer."""
    contracts = load_contracts(find_contracts_dir().resolve())

    async def probe() -> list[CloudEvent] | None:
        found = []
        for r in await read_topic(bootstrap, "customer.profile", expect=1, timeout=2):
            event = CloudEvent.model_validate_json(r.value or b"")
            contracts.validate_event(event)
            assert (r.key or b"").decode() == event.subject
            found.append(event)
        return found if until(found) else None

    return await eventually(probe, timeout=15)


# --- 1. BOSS feed → search → 360 view → audited unmasking -------------------------------------------------------------


async def test_a_boss_fed_customer_is_found_and_seen_whole_and_unmasking_is_audited(system):
    async with system.customer_service():
        await fed(system)
        gateway = system.gateway

        r = await gateway.get(SEARCH, params={"q": "1381234"})
        assert r.status_code == 200, r.text
        assert r.headers["X-Search-By"] == "phone"
        assert [(h["id"], h["matched"]["msisdn"]) for h in r.json()] == [
            (ZHAO, ["138****0001"]),
            (QIAN, ["138****0002"]),
        ]
        r = await gateway.get(SEARCH, params={"q": "赵敏"})
        [hit] = r.json()
        assert (hit["id"], hit["name"], hit["exact"], hit["idCardNo"]) == (ZHAO, "赵敏", True, "110105********0516")
        assert hit["valueTier"] == "high"

        page = (await view360(gateway, ZHAO)).json()
        assert page["profile"]["name"] == "赵敏"
        assert page["profile"]["id_card_no"] == "110105********0516"
        assert [(line["id"], line["msisdn"], line["monthly_fee"]["fen"]) for line in page["lines"]] == [
            ("S300001", "138****0001", 12_900),
            ("S300011", "139****0011", 19_900),
        ]
        bill = page["billing"]
        assert bill["arpu"] == {"fen": 22_850, "yuan": "228.50"}  # (129 + 328) / 2
        assert bill["spend_trend"] == [
            {"billing_period": "2026-09", "amount_due": {"fen": 12_900, "yuan": "129.00"}, "invoices": 1},
            {"billing_period": "2026-10", "amount_due": {"fen": 32_800, "yuan": "328.00"}, "invoices": 1},
        ]
        assert (bill["payment_status"], bill["outstanding"]["yuan"], bill["overdue_invoices"]) == (
            "in_arrears",
            "328.00",
            1,
        )
        usage = page["usage_30d"]
        assert (usage["voice_minutes"], usage["sms_count"], usage["data_mb"], usage["days_active"]) == (42, 3, 1024, 1)
        assert page["tiers"]["value_tier"] == "high"
        timeline = page["timeline"]
        moments = [datetime.fromisoformat(row["occurred_at"]) for row in timeline]
        assert moments == sorted(moments, reverse=True)
        assert all(row["occurred_at"].endswith("+08:00") for row in timeline)
        assert len(timeline) == 7  # 2 activations, 2 bills, a payment, an overdue notice, a usage day
        assert timeline[-1]["type"] == "billing.subscription.activated.v1"
        assert timeline[-1]["occurred_at"] == "2026-06-01T09:30:00+08:00"

        # an agent with pii:read who says why sees the numbers; the read is audited under the gateway's request id
        shown = await view360(gateway, ZHAO, **PII_AGENT)
        assert [line["msisdn"] for line in shown.json()["lines"]] == ["13812340001", "13912340011"]
        assert shown.json()["profile"]["id_card_no"] == ID_CARD
        without_reason = await view360(gateway, ZHAO, **bearer("agent-7", scopes=("pii:read",)))
        assert without_reason.json()["lines"][0]["msisdn"] == "138****0001"
        assert without_reason.headers["X-PII-Masked"].startswith("reason-required")

        audit = await gateway.get(f"{PRIVACY}/audit", params={"customer_id": ZHAO}, headers=SUPERVISOR)
        assert audit.status_code == 200, audit.text
        [row] = audit.json()
        assert (row["actor"], row["reason"], row["fields"]) == ("agent-7", "ticket T-3001", ["msisdn", "id_card_no"])
        assert row["action"] == f"GET /api/v1/customers/{ZHAO}/view360"
        assert row["request_id"] == shown.headers["x-request-id"]
        assert_problem(await gateway.get(f"{PRIVACY}/audit"), 403)


# --- 2 + 3. an organisation entered by an agent, made a key account, handed between managers -------------------------


async def test_an_organisation_is_entered_made_a_key_account_and_only_its_manager_sees_it(system, kafka):
    async with system.customer_service():
        await eventually(lambda: ready(system.gateway), timeout=20)
        gateway = system.gateway
        r = await gateway.post(
            CUSTOMERS,
            json={
                "name": "深圳市星河电子有限公司",
                "customerType": "organization",
                "region": "GD-SZ",
                "registrationNo": USCC,
                "industry": "manufacturing",
            },
        )
        assert r.status_code == 201, r.text
        org = r.json()["id"]
        assert r.headers["Location"] == f"{CUSTOMERS}/{org}"
        assert (r.json()["partyType"], r.json()["status"]) == ("Organization", "inactive")

        patch = {
            "name": "深圳市星河电子集团有限公司",
            "industry": None,
            "contactMedium": [
                {"mediumType": "email", "preferred": True, "characteristic": {"emailAddress": "it@xinghe.example.cn"}}
            ],
        }
        r = await gateway.patch(
            f"{CUSTOMERS}/{org}", content=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}
        )
        assert r.status_code == 200, r.text
        traits = {c["name"]: c["value"] for c in r.json()["characteristic"]}
        assert r.json()["name"] == "深圳市星河电子集团有限公司"
        assert "industry" not in traits and traits["registrationNo"] == USCC
        assert r.json()["contactMedium"][0]["characteristic"]["emailAddress"] == "it@xinghe.example.cn"

        # 集团 → 分支 accounts
        group = await gateway.post(ACCOUNTS, json={"customerId": org, "name": "星河集团总账户", "accountType": "group"})
        assert group.status_code == 201, group.text
        top = group.json()["id"]
        branches = []
        for name in ("华南分公司", "华东分公司"):
            r = await gateway.post(
                ACCOUNTS, json={"customerId": org, "name": name, "accountType": "branch", "parentId": top}
            )
            assert r.status_code == 201, r.text
            branches.append(r.json()["id"])
        tree = (await gateway.get(f"{ACCOUNTS}/{top}/hierarchy")).json()
        assert sorted((c["id"], c["name"]) for c in tree["children"]) == sorted(
            zip(branches, ("华南分公司", "华东分公司"), strict=True)
        )
        assert (await gateway.get(f"{ACCOUNTS}/{top}")).json()["children"] == sorted(branches)

        # consents and do-not-disturb (营销授权/免打扰)
        consents = f"/api/v1/customers/{org}/consents"
        r = await gateway.put(f"{consents}/email/marketing", json={"granted": True, "source": "web"})
        assert r.status_code == 200, r.text
        assert r.json()["contactable"] is True
        until = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=30)).isoformat()
        r = await gateway.put(
            f"/api/v1/customers/{org}/do-not-disturb", json={"enabled": True, "until": until, "source": "hotline"}
        )
        assert r.status_code == 200, r.text
        state = (await gateway.get(consents)).json()
        [email] = [c for c in state["consents"] if (c["channel"], c["purpose"]) == ("email", "marketing")]
        assert (email["granted"], email["contactable"]) == (True, False)  # granted, but not now: do-not-disturb
        assert state["do_not_disturb"]["active"] is True
        history = (await gateway.get(f"{consents}/history")).json()
        assert [h["kind"] for h in history] == ["do_not_disturb", "consent"]

        # a supervisor makes it a key account of kam-1; another customer stays outside the portfolio
        other = (
            await gateway.post(CUSTOMERS, json={"name": "李雷", "customerType": "individual", "region": "GD-SZ"})
        ).json()["id"]
        r = await gateway.put(
            f"{KEY_ACCOUNTS}/{org}",
            json={"tier": "strategic", "account_manager": "kam-1", "reason": "Group contract signed"},
            headers=SUPERVISOR,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"customer_id": org, "key_account": True, "tier": "strategic", "account_manager": "kam-1"}
        kam1, kam2 = bearer("kam-1", roles=("key_account_manager",)), bearer("kam-2", roles=("key_account_manager",))

        portfolio = await gateway.get(f"{KEY_ACCOUNTS}/portfolio", headers=kam1)
        assert [(p["customer_id"], p["tier"]) for p in portfolio.json()] == [(org, "strategic")]
        listed = await gateway.get(CUSTOMERS, headers=kam1)
        assert [c["id"] for c in listed.json()] == [org] and listed.headers["X-Total-Count"] == "1"
        page = await view360(gateway, org, **kam1)
        assert page.status_code == 200, page.text
        assert page.json()["profile"]["account_manager"] == "kam-1"
        assert {a["id"] for a in page.json()["accounts"]} == {top, *branches}
        assert_problem(await view360(gateway, other, **kam1), 404, "customer_id")
        assert_problem(await gateway.get(f"{CUSTOMERS}/{other}", headers=kam1), 404)
        assert_problem(await gateway.get(f"{KEY_ACCOUNTS}/portfolio", params={"manager": "kam-2"}, headers=kam1), 403)
        assert_problem(await view360(gateway, org, **kam2), 404, "customer_id")

        r = await gateway.post(
            f"{KEY_ACCOUNTS}/{org}/reassign",
            json={"to_manager": "kam-2", "reason": "Territory change"},
            headers=SUPERVISOR,
        )
        assert r.status_code == 200, r.text
        assert_problem(await view360(gateway, org, **kam1), 404, "customer_id")
        assert_problem(await gateway.get(f"{ACCOUNTS}/{top}", headers=kam1), 404, "account_id")
        assert (await gateway.get(f"{KEY_ACCOUNTS}/portfolio", headers=kam1)).json() == []
        assert (await gateway.get(CUSTOMERS, headers=kam1)).json() == []
        assert (await view360(gateway, org, **kam2)).json()["profile"]["account_manager"] == "kam-2"
        history = (await gateway.get(f"{KEY_ACCOUNTS}/{org}/history", headers=kam2)).json()
        assert [(h["change"], h["from_manager"], h["to_manager"]) for h in history] == [
            ("reassigned", "kam-1", "kam-2"),
            ("designated", None, "kam-1"),
        ]

        published = await profile_events(kafka.bootstrap, lambda found: sum(e.subject == org for e in found) >= 6)
    mine = [
        (e.type.removeprefix("customer.profile.").removesuffix(".v1"), e.data) for e in published if e.subject == org
    ]
    assert [kind for kind, _ in mine] == [
        "created",
        "updated",
        "consent_changed",
        "dnd_changed",
        "key_account_changed",
        "key_account_changed",
    ]
    assert mine[1][1]["name"] == "深圳市星河电子集团有限公司"
    assert (mine[2][1]["channel"], mine[2][1]["granted"]) == ("email", True)
    assert [d["account_manager"] for kind, d in mine[4:]] == ["kam-1", "kam-2"]


# --- 4. a marketer's segment over the BOSS-fed population -------------------------------------------------------------


async def test_a_marketer_previews_and_creates_a_segment_and_the_360_view_lists_it(system):
    async with system.customer_service():
        await fed(system)
        gateway = system.gateway
        rule = {
            "all": [{"field": "region", "op": "eq", "value": "BJ"}, {"field": "arpu_fen", "op": "gte", "value": 10_000}]
        }

        r = await gateway.post(f"{SEGMENTS}/preview", json={"rule": rule}, headers=MARKETER)
        assert r.status_code == 200, r.text
        tiers = (await view360(gateway, ZHAO)).json()["tiers"]
        assert r.json() == {"count": 1, "sample": [{"customer_id": ZHAO, "name": "赵*"}]}, tiers
        wider = await gateway.post(
            f"{SEGMENTS}/preview", json={"rule": {"field": "region", "op": "eq", "value": "BJ"}}, headers=MARKETER
        )
        assert wider.json()["count"] == 2

        r = await gateway.post(
            SEGMENTS, json={"name": "北京高价值", "description": "BJ, ARPU ≥ 100 yuan", "rule": rule}, headers=MARKETER
        )
        assert r.status_code == 201, r.text
        segment = r.json()
        assert (segment["kind"], segment["member_count"], segment["created_by"]) == ("rule", 1, "mkt-01")
        sid = segment["id"]

        members = await gateway.get(f"{SEGMENTS}/{sid}/members", headers=MARKETER)
        assert [(m["customer_id"], m["name"]) for m in members.json()] == [(ZHAO, "赵*")]
        assert members.headers["X-Total-Count"] == "1"
        listed = await gateway.get(CUSTOMERS, params={"segment": sid, "fields": "name"})
        assert [(c["id"], c["name"]) for c in listed.json()] == [(ZHAO, "赵敏")]
        segments = (await gateway.get(SEGMENTS, headers=MARKETER)).json()
        assert {s["id"] for s in segments} >= {sid, "value-high"}
        high = await gateway.get(f"{SEGMENTS}/value-high/members", headers=MARKETER)
        assert [m["customer_id"] for m in high.json()] == [ZHAO]  # ARPU 228.50 yuan; 钱进 39, 孙丽 99

        assert (await view360(gateway, ZHAO)).json()["segments"] == [{"id": sid, "name": "北京高价值"}]
        assert (await view360(gateway, QIAN)).json()["segments"] == []


# --- 5. privacy: merge duplicates, export, erase ---------------------------------------------------------------------


async def test_duplicates_are_merged_the_survivor_exported_then_erased(system, kafka):
    async with system.customer_service():
        await fed(system)
        gateway = system.gateway
        # the BOSS opened 钱进's second line under a new customer id: a duplicate with the same ID card
        dup = "C300099"
        await push(
            gateway, [activated(dup, "S300099", "13812340099", "钱进", "BJ", PLAN_129, "2026-11-01T09:00:00+08:00")]
        )
        await eventually(lambda: _exists(gateway, dup), timeout=15)

        r = await gateway.post(
            f"{PRIVACY}/customers/{QIAN}/merge",
            json={"duplicate_id": dup, "reason": "Same ID card"},
            headers=SUPERVISOR,
        )
        assert r.status_code == 200, r.text
        assert (r.json()["survivor_id"], r.json()["merged_id"], r.json()["moved"]["subscription"]) == (QIAN, dup, 1)
        gone = assert_problem(await gateway.get(f"{CUSTOMERS}/{dup}"), 404)
        assert gone["merged_into"] == QIAN
        assert assert_problem(await view360(gateway, dup), 404, "customer_id")["merged_into"] == QIAN
        kept = (await view360(gateway, QIAN)).json()
        assert sorted(line["id"] for line in kept["lines"]) == ["S300002", "S300099"]

        # the customer asks for a copy of everything held (个人信息副本), then to be erased (删除权)
        url = f"{PRIVACY}/customers/{QIAN}/export"
        assert_problem(await gateway.get(url, headers=SUPERVISOR), 422, "X-Access-Reason")
        assert_problem(await gateway.get(url, headers=PII_AGENT), 403)
        export = await gateway.get(url, headers={**SUPERVISOR, "X-Access-Reason": "DSAR-2026-17"})
        assert export.status_code == 200, export.text
        held = export.json()
        assert (held["profile"]["name"], held["profile"]["id_card_no"]) == ("钱进", ID_CARD)
        assert sorted(line["msisdn"] for line in held["lines"]) == ["13812340002", "13812340099"]
        assert [(i["billing_period"], i["amount_due_fen"]) for i in held["invoices"]] == [("2026-10", 3_900)]
        assert [p["amount_fen"] for p in held["payments"]] == [3_900]
        assert [(m["survivor_id"], m["merged_id"]) for m in held["merges"]] == [(QIAN, dup)]
        assert held["erasure"] is None

        r = await gateway.post(
            f"{PRIVACY}/customers/{QIAN}/erasure", json={"reason": "customer_request"}, headers=SUPERVISOR
        )
        assert r.status_code == 201, r.text
        pseudonym = r.json()["name"]
        assert pseudonym.startswith("已删除客户 ")
        shown = await view360(gateway, QIAN, **PII_AGENT)
        assert shown.json()["profile"]["name"] == pseudonym
        assert "钱进" not in shown.text and ID_CARD not in shown.text and "13812340002" not in shown.text
        assert (await gateway.get(SEARCH, params={"q": "钱进"})).json() == []
        assert [h["id"] for h in (await gateway.get(SEARCH, params={"q": "1381234"})).json()] == [ZHAO]

        audit = (await gateway.get(f"{PRIVACY}/audit", params={"actor": "sup-wang"}, headers=SUPERVISOR)).json()
        assert [(a["customer_id"], a["reason"]) for a in audit] == [(QIAN, "DSAR-2026-17")]

        published = await profile_events(
            kafka.bootstrap, lambda found: any(e.type == "customer.profile.erased.v1" for e in found)
        )
    merged = [e for e in published if e.type == "customer.profile.merged.v1"]
    erased = [e for e in published if e.type == "customer.profile.erased.v1"]
    assert [(e.data["survivor_id"], e.data["merged_id"]) for e in merged] == [(QIAN, dup)]
    assert [e.data for e in erased] == [
        {"customer_id": QIAN, "erased_at": erased[0].data["erased_at"], "reason": "customer_request"}
    ]


async def _exists(gateway: httpx.AsyncClient, cid: str) -> bool:
    return (await gateway.get(f"{CUSTOMERS}/{cid}")).status_code == 200


# --- 6. bad input through the gateway ---------------------------------------------------------------------------------


async def test_bad_input_through_the_gateway_is_a_problem_naming_the_field(system):
    async with system.customer_service():
        await eventually(lambda: ready(system.gateway), timeout=20)
        gateway = system.gateway
        cid = (
            await gateway.post(CUSTOMERS, json={"name": "韩梅梅", "customerType": "individual", "region": "BJ"})
        ).json()["id"]
        preview = f"{SEGMENTS}/preview"

        unknown = {
            "all": [{"field": "region", "op": "eq", "value": "BJ"}, {"field": "shoe_size", "op": "eq", "value": 42}]
        }
        body = assert_problem(
            await gateway.post(preview, json={"rule": unknown}, headers=MARKETER), 422, "rule.all[1].field"
        )
        assert "shoe_size" in body["detail"]
        wrong_type = {"field": "arpu_fen", "op": "gte", "value": "100"}
        assert_problem(await gateway.post(preview, json={"rule": wrong_type}, headers=MARKETER), 422, "rule.value")
        assert_problem(
            await gateway.post(SEGMENTS, json={"name": "x", "rule": wrong_type, "colour": "red"}, headers=MARKETER),
            422,
            "colour",
        )
        assert_problem(await gateway.post(SEGMENTS, json={"name": "x"}, headers=MARKETER), 422, "rule")
        assert_problem(await gateway.get(f"/api/v1/customers/{'C' * 65}/view360"), 422, "customer_id")
        assert_problem(await gateway.get("/api/v1/customers/NOBODY/view360"), 404, "customer_id")
        assert_problem(
            await gateway.get(f"/api/v1/customers/{cid}/view360", params={"timeline_limit": "many"}),
            422,
            "timeline_limit",
        )
        assert_problem(await gateway.get(CUSTOMERS, params={"limit": 5000}), 422, "limit")
        assert_problem(await gateway.get(CUSTOMERS, params={"fields": "name,shoeSize"}), 422, "fields")
        assert_problem(await gateway.get(SEARCH, params={"q": "138abc", "by": "phone"}), 422, "q")
        assert_problem(await gateway.get(f"{SEGMENTS}/value-high/members", params={"limit": 5000}), 422, "limit")
        assert_problem(
            await gateway.put(
                f"/api/v1/customers/{cid}/consents/pigeon/marketing", json={"granted": True, "source": "app"}
            ),
            422,
            "channel",
        )
        assert_problem(
            await gateway.put(
                f"/api/v1/customers/{cid}/consents/sms/marketing", json={"granted": "yes", "source": "app"}
            ),
            422,
            "granted",
        )
        assert_problem(
            await gateway.put(
                f"{KEY_ACCOUNTS}/{cid}",
                json={"tier": "platinum", "account_manager": "kam-1", "reason": "why not"},
                headers=SUPERVISOR,
            ),
            422,
            "tier",
        )
        assert_problem(
            await gateway.post(
                f"{PRIVACY}/customers/{cid}/erasure", json={"reason": "he asked nicely"}, headers=SUPERVISOR
            ),
            422,
            "reason",
        )
        malformed = await gateway.post(CUSTOMERS, content=b"{not json", headers={"Content-Type": "application/json"})
        assert_problem(malformed, 400)

        # who may do what: no token, a bad token, the wrong role
        nobody = {"Authorization": ""}
        assert_problem(await view360(gateway, cid, **nobody), 401)
        assert_problem(await gateway.get(CUSTOMERS, headers={"Authorization": "Bearer not-a-jwt"}), 401)
        assert_problem(await gateway.post(preview, json={"rule": wrong_type}, headers=nobody), 401)
        assert_problem(
            await gateway.post(
                CUSTOMERS, json={"name": "x", "customerType": "individual", "region": "BJ"}, headers=MARKETER
            ),
            403,
        )
        assert_problem(await gateway.post(preview, json={"rule": {"field": "region", "op": "eq", "value": "BJ"}}), 403)
        assert_problem(
            await gateway.put(
                f"{KEY_ACCOUNTS}/{cid}", json={"tier": "gold", "account_manager": "kam-1", "reason": "why not"}
            ),
            403,
        )
        assert_problem(await gateway.get(f"{PRIVACY}/customers/{cid}/export", headers=PII_AGENT), 403)
        # a partner that did not bring the customer in does not know it exists
        other_partner = bearer("p-1", roles=("partner",), partner_id="DLR-NOT-THEIRS")
        assert_problem(await view360(gateway, cid, **other_partner), 404, "customer_id")
        # nothing of it changed the customer
        after = (await gateway.get(f"{CUSTOMERS}/{cid}")).json()
        assert (after["name"], after["keyAccount"]["isKeyAccount"]) == ("韩梅梅", False)
