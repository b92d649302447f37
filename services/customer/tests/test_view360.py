"""The 360° view (客户360视图) over real HTTP: everything the service knows of one customer on one page, fed by the
BOSS and the other services through the broker; numbers masked unless pii:read with a reason; the first page of
the timeline with the offset of the next; bad ids and parameters are problems, never a 500."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from crm_kit.testing import bearer

BASE = "/api/v1/customers"
PII = {**bearer("agent-7", roles=("agent",), scopes=("pii:read",)), "X-Access-Reason": "ticket T-1001"}


def assert_problem(r: Any, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field, r.json()


async def _customer_with_history(service, boss, cid: str) -> None:
    await boss.send(
        boss.activated(cid, f"S{cid}-1", "13800000710", "2026-10-01T09:00:00+08:00"),
        boss.activated(cid, f"S{cid}-2", "13900000711", "2026-10-02T09:00:00+08:00", plan=boss.PLAN_199),
    )
    account = f"A{cid[1:]}"
    await boss.send_billing(
        boss.billing_example(
            "billing.invoice.issued.v1",
            "individual_monthly",
            customer_id=cid,
            account_id=account,
            invoice_id=f"INV-{cid}",
            billing_period="2026-10",
            amount_due_fen=12900,
            items=[{"code": "MONTHLY_FEE", "description": "月租", "amount_fen": 12900}],
        ),
        boss.billing_example(
            "billing.usage.recorded.v1",
            "domestic_day",
            customer_id=cid,
            account_id=account,
            subscription_id=f"S{cid}-1",
            usage_date=(date.today() - timedelta(days=1)).isoformat(),
            voice_minutes=30,
            sms_count=0,
            data_mb=512,
            roaming=False,
        ),
    )
    await boss.send_billing(
        boss.produced("ticketing.ticket.created.v1", "billing_complaint", customer_id=cid, ticket_id=f"T{cid}"),
        boss.produced("churn.score.computed.v1", "high_churn", customer_id=cid),
        boss.produced("campaign.contact.sent.v1", "upgrade_offer_sms", customer_id=cid, contact_id=f"CT{cid}"),
    )


def _complete(page: dict[str, Any]) -> bool:
    return bool(
        len(page["lines"]) == 2
        and page["billing"]["arpu"]
        and page["usage_30d"]["voice_minutes"]
        and page["tickets"]["open_count"]
        and page["risk"]["churn"]
        and page["campaign_contacts"]
    )


async def test_the_360_view_shows_every_side_of_the_customer(service, boss):
    cid = "C710"
    await _customer_with_history(service, boss, cid)

    page = await service.view360(cid, _complete)
    assert page["customer_id"] == cid
    profile = page["profile"]
    assert profile["name"] == "张伟"
    assert (profile["customer_type"], profile["status"], profile["region"]) == ("individual", "active", "BJ")
    assert profile["id_card_no"] == "110105********0516"  # masked: no pii:read
    assert profile["key_account"] is False
    assert profile["created_at"].endswith("+08:00")
    assert page["accounts"] == [
        {"id": "A710", "name": None, "account_type": "individual", "parent_id": None, "status": "active"}
    ]
    first, second = page["lines"]
    assert (first["msisdn"], second["msisdn"]) == ("138****0710", "139****0711")
    assert first["monthly_fee"] == {"fen": 12900, "yuan": "129.00"}
    assert second["plan_code"] == "5G-ULT-199"
    assert first["activated_at"] == "2026-10-01T09:00:00+08:00"
    assert page["billing"]["arpu"] == {"fen": 12900, "yuan": "129.00"}
    assert page["billing"]["spend_trend"] == [
        {"billing_period": "2026-10", "amount_due": {"fen": 12900, "yuan": "129.00"}, "invoices": 1}
    ]
    assert page["billing"]["payment_status"] == "good"
    assert page["billing"]["outstanding"] == {"fen": 0, "yuan": "0.00"}
    assert (page["usage_30d"]["voice_minutes"], page["usage_30d"]["data_mb"]) == (30, 512)
    assert page["tiers"]["value_tier"] in ("high", "mid", "low")
    assert page["tiers"]["lifecycle_stage"] == "at_risk"  # churn score 0.8731
    assert page["segments"] == []
    assert [t["ticket_id"] for t in page["tickets"]["open"]] == [f"T{cid}"]
    assert page["tickets"]["last_csat"] is None
    assert page["risk"]["churn"]["score"] == "0.8731"
    assert len(page["risk"]["churn"]["top_reasons"]) == 3
    assert page["risk"]["bad_debt"] is None
    assert [c["contact_id"] for c in page["campaign_contacts"]] == [f"CT{cid}"]
    kinds = {row["kind"] for row in page["timeline"]}
    assert kinds == {"billing", "ticket", "score", "campaign"}
    moments = [row["occurred_at"] for row in page["timeline"]]
    assert moments == sorted(moments, reverse=True)


async def test_numbers_are_shown_only_with_pii_read_and_a_reason(service, boss):
    cid = "C711"
    await boss.send(boss.activated(cid, "S711", "13800000711", "2026-10-01T09:00:00+08:00"))
    await service.view360(cid, lambda v: v["lines"])
    url = f"{BASE}/{cid}/view360"

    plain = await service.http.get(url)
    assert plain.json()["lines"][0]["msisdn"] == "138****0711"
    assert "X-PII-Masked" not in plain.headers

    no_reason = await service.http.get(url, headers=bearer("agent-7", scopes=("pii:read",)))
    assert no_reason.json()["lines"][0]["msisdn"] == "138****0711"
    assert no_reason.json()["profile"]["id_card_no"] == "110105********0516"
    assert no_reason.headers["X-PII-Masked"].startswith("reason-required")

    shown = await service.http.get(url, headers=PII)
    assert shown.status_code == 200, shown.text
    assert shown.json()["lines"][0]["msisdn"] == "13800000711"
    assert shown.json()["profile"]["id_card_no"] == "110105198803120516"
    assert "X-PII-Masked" not in shown.headers


async def test_the_timeline_page_says_where_the_next_one_starts(service, boss):
    cid = "C712"
    await _customer_with_history(service, boss, cid)
    page = await service.view360(cid, _complete)
    everything = (await service.http.get(f"{BASE}/{cid}/timeline")).json()
    assert len(everything) == 7  # 2 activations, a bill, a usage day, a ticket, a score, a contact
    assert page["timeline_next_offset"] is None  # all 7 fit in the default 20

    first = (await service.http.get(f"{BASE}/{cid}/view360", params={"timeline_limit": 3})).json()
    assert [row["id"] for row in first["timeline"]] == [row["id"] for row in everything[:3]]
    assert first["timeline_next_offset"] == 3
    rest = (await service.http.get(f"{BASE}/{cid}/timeline", params={"offset": 3})).json()
    assert [row["id"] for row in rest] == [row["id"] for row in everything[3:]]
    last = (await service.http.get(f"{BASE}/{cid}/view360", params={"timeline_limit": 7})).json()
    assert last["timeline_next_offset"] is None


async def test_bad_requests_are_problems(service, boss):
    await boss.send(boss.activated("C713", "S713", "13800000713", "2026-10-01T09:00:00+08:00"))
    await service.view360("C713")
    assert_problem(await service.http.get(f"{BASE}/NOBODY/view360"), 404, "customer_id")
    for what in ("tickets", "risk-scores", "campaign-contacts"):
        assert_problem(await service.http.get(f"{BASE}/NOBODY/{what}"), 404, "customer_id")
    url = f"{BASE}/C713/view360"
    assert_problem(await service.http.get(url, params={"timeline_limit": 101}), 422, "timeline_limit")
    assert_problem(await service.http.get(url, params={"timeline_limit": 0}), 422, "timeline_limit")
    assert_problem(await service.http.get(f"{BASE}/{'C' * 65}/view360"), 422, "customer_id")
    assert_problem(await service.http.get(f"{BASE}/C713/tickets", params={"limit": 1001}), 422, "limit")
    assert_problem(await service.http.get(f"{BASE}/C713/campaign-contacts", params={"offset": -1}), 422, "offset")
    # a key-account manager sees only their own portfolio: anyone else is not there for them
    manager = bearer("kam-9", roles=("key_account_manager",))
    assert_problem(await service.http.get(url, headers=manager), 404, "customer_id")
    assert_problem(await service.http.get(f"{BASE}/C713/tickets", headers=manager), 404, "customer_id")
