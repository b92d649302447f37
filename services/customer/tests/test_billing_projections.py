"""Billing projections and the interaction timeline, through real HTTP with the real broker and database:
ARPU and spend trend from bills (a re-sent bill replaces, never double-counts), payment behaviour and arrears
(an overdue bill paid clears the outstanding amount), 30-day activity from daily usage (a corrected day replaces
the earlier one), and the timeline (newest first, paged, filtered; a redelivered event is one row)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from crm_kit.testing import eventually

BASE = "/api/v1/customers"
INVOICE = "billing.invoice.issued.v1"
RECEIVED = "billing.payment.received.v1"
FAILED = "billing.payment.failed.v1"
OVERDUE = "billing.payment.overdue.v1"
USAGE = "billing.usage.recorded.v1"
CREDIT = "billing.account.credit_limit_changed.v1"
COLLECTION = "billing.account.collection_status_changed.v1"
PROBLEM_JSON = "application/problem+json"


def invoice(boss, cid: str, period: str, fen: int, *, invoice_id: str | None = None, at: str | None = None, **kw):
    year, month = (int(p) for p in period.split("-"))
    issued = at or f"{year + month // 12}-{month % 12 + 1:02d}-01T02:00:00+08:00"
    due = f"{year + month // 12}-{month % 12 + 1:02d}-20"
    return boss.billing_example(
        INVOICE,
        "individual_monthly",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        invoice_id=invoice_id or f"INV-{period.replace('-', '')}-{cid}",
        billing_period=period,
        occurred_at=issued,
        issued_at=issued,
        due_date=due,
        amount_due_fen=fen,
        items=[{"code": "MONTHLY_FEE", "description": "月租", "amount_fen": fen}],
        **kw,
    )


def usage(boss, cid: str, line: str, day: str, at: str, **figures: Any):
    data = {"voice_minutes": 0, "sms_count": 0, "data_mb": 0, "roaming": False, **figures}
    return boss.billing_example(
        USAGE,
        "domestic_day",
        customer_id=cid,
        account_id=f"A{cid[1:]}",
        subscription_id=line,
        usage_date=day,
        occurred_at=at,
        **data,
    )


async def get(service, cid: str, what: str, **params: Any) -> dict[str, Any]:
    r = await service.http.get(f"{BASE}/{cid}/{what}", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def until(service, cid: str, what: str, check, **params: Any) -> dict[str, Any]:
    """The resource once it exists and `check` holds (the consumer has applied what it needs)."""

    async def probe() -> dict[str, Any] | None:
        r = await service.http.get(f"{BASE}/{cid}/{what}", params=params)
        return r.json() if r.status_code == 200 and check(r.json()) else None

    return await eventually(probe, timeout=15)


async def timeline_rows(service, cid: str, expect: int, **params: Any) -> tuple[list[dict[str, Any]], Any]:
    async def probe() -> tuple[list[dict[str, Any]], Any] | None:
        r = await service.http.get(f"{BASE}/{cid}/timeline", params=params)
        if r.status_code != 200 or int(r.headers["X-Total-Count"]) < expect:
            return None
        return r.json(), r.headers

    return await eventually(probe, timeout=15)


async def consumed(service, topic: str, **labels: str) -> float:
    return await service.metric("crm_customer_events_consumed_total", topic=topic, **labels)


async def test_arpu_is_the_mean_of_the_last_three_billed_months_and_a_resent_bill_replaces(service, boss):
    cid = "C2001"
    await boss.send(boss.activated(cid, "S2001", "13800002001", "2026-05-20T09:30:00+08:00"))
    await service.wait_for(cid)
    await boss.send_billing(
        invoice(boss, cid, "2026-06", 9900),
        invoice(boss, cid, "2026-07", 12900),
        invoice(boss, cid, "2026-08", 12900),
        invoice(boss, cid, "2026-09", 12900),
        invoice(boss, cid, "2026-10", 14900),
        invoice(boss, cid, "2026-11", 99900),  # wrong: the BOSS re-sends it corrected below
    )
    first = await until(service, cid, "billing-summary", lambda s: len(s["spend_trend"]) == 6)
    assert first["arpu_months"] == ["2026-09", "2026-10", "2026-11"]
    assert first["arpu"] == {"fen": 42567, "yuan": "425.67"}  # (12900 + 14900 + 99900) / 3 = 42566.67

    # The same bill (same invoice id) re-sent with the corrected amount, then a stale copy of the wrong one
    before = await consumed(service, "billing.invoice")
    corrected = invoice(boss, cid, "2026-11", 15000, at="2026-12-02T02:00:00+08:00")
    stale = invoice(boss, cid, "2026-11", 99900, at="2026-12-01T01:00:00+08:00")
    await boss.send_billing(corrected, stale)
    await until(service, cid, "billing-summary", lambda s: s["spend_trend"][-1]["amount_due"]["fen"] != 99900)
    await eventually(consumed_since(service, "billing.invoice", before, 2))
    summary = await get(service, cid, "billing-summary")
    assert summary["spend_trend"][-1] == {
        "billing_period": "2026-11",
        "amount_due": {"fen": 15000, "yuan": "150.00"},
        "invoices": 1,
    }
    # (12900 + 14900 + 15000) / 3 = 14266.67 → 14267 fen, half up; never a float
    assert summary["arpu"] == {"fen": 14267, "yuan": "142.67"}
    assert [m["billing_period"] for m in summary["spend_trend"]] == [
        "2026-06",
        "2026-07",
        "2026-08",
        "2026-09",
        "2026-10",
        "2026-11",
    ]
    assert summary["payment"]["status"] == "good"
    assert summary["payment"]["invoices_unpaid"] == 6

    # A seventh month pushes the oldest out of the 6-month trend
    await boss.send_billing(invoice(boss, cid, "2026-12", 12900))
    summary = await until(
        service, cid, "billing-summary", lambda s: s["spend_trend"][-1]["billing_period"] == "2026-12"
    )
    assert summary["spend_trend"][0]["billing_period"] == "2026-07"
    assert summary["arpu"] == {"fen": 14267, "yuan": "142.67"}  # (14900 + 15000 + 12900) / 3


def consumed_since(service, topic: str, before: float, n: int):
    """A probe: at least `n` more events of `topic` consumed (applied or duplicate) than `before`."""

    async def probe() -> bool:
        return await consumed(service, topic) >= before + n

    return probe


async def test_overdue_then_paid_clears_the_outstanding_amount(service, boss):
    cid, account = "C2002", "A2002"
    await boss.send_billing(
        invoice(boss, cid, "2026-10", 12900, invoice_id="INV-OCT"),
        invoice(boss, cid, "2026-11", 14900, invoice_id="INV-NOV"),
        boss.billing_example(
            RECEIVED,
            "wechat_pay_for_invoice",
            customer_id=cid,
            account_id=account,
            invoice_id="INV-OCT",
            payment_id="PAY-OCT",
            amount_fen=12900,
            paid_at="2026-11-15T10:00:00+08:00",
            occurred_at="2026-11-15T10:00:01+08:00",
        ),
        boss.billing_example(
            FAILED,
            "auto_debit_insufficient_funds",
            customer_id=cid,
            account_id=account,
            invoice_id="INV-NOV",
            attempted_at="2026-12-18T06:00:00+08:00",
            occurred_at="2026-12-18T06:00:12+08:00",
        ),
        boss.billing_example(
            OVERDUE,
            "november_bill",
            customer_id=cid,
            account_id=account,
            invoice_id="INV-NOV",
            amount_overdue_fen=14900,
            days_overdue=2,
            due_date="2026-12-20",
            occurred_at="2026-12-22T02:00:00+08:00",
        ),
        boss.billing_example(
            CREDIT, "star_level_upgrade", customer_id=cid, account_id=account, occurred_at="2026-11-25T00:00:00+08:00"
        ),
        boss.billing_example(
            COLLECTION,
            "hard_suspended_for_arrears",
            customer_id=cid,
            account_id=account,
            occurred_at="2026-12-23T02:00:00+08:00",
        ),
    )
    # bills, payments and account changes travel on three topics: wait for all of them
    summary = await until(service, cid, "billing-summary", lambda s: _seen(s, 2, "PAY-OCT", 1, "hard_suspended"))
    payment = summary["payment"]
    assert payment["status"] == "in_arrears"
    assert payment["outstanding"] == {"fen": 14900, "yuan": "149.00"}
    assert (payment["invoices_paid_on_time"], payment["invoices_paid_late"], payment["invoices_unpaid"]) == (1, 0, 1)
    assert (payment["overdue_invoices"], payment["failed_payments"]) == (1, 1)
    assert payment["last_payment"]["id"] == "PAY-OCT"
    assert payment["last_payment"]["at"] == "2026-11-15T10:00:00+08:00"
    assert summary["credit_limit"] == {"fen": 30000, "yuan": "300.00"}
    assert summary["accounts"] == [
        {
            "account_id": account,
            "collection_status": "hard_suspended",
            "collection_status_at": "2026-12-23T02:00:00+08:00",
            "collection_outstanding": {"fen": 14900, "yuan": "149.00"},
            "credit_limit": {"fen": 30000, "yuan": "300.00"},
            "credit_limit_at": "2026-11-25T00:00:00+08:00",
        }
    ]
    # The customer was unknown: a placeholder now stands for them, as a subscription event would have made it
    placeholder = await service.customer(cid)
    assert placeholder is not None and placeholder["status"] == "inactive"

    await boss.send_billing(
        boss.billing_example(
            RECEIVED,
            "wechat_pay_for_invoice",
            customer_id=cid,
            account_id=account,
            invoice_id="INV-NOV",
            payment_id="PAY-NOV",
            amount_fen=14900,
            paid_at="2026-12-24T10:15:20+08:00",
            occurred_at="2026-12-24T10:15:21+08:00",
        ),
        boss.billing_example(
            COLLECTION,
            "back_to_normal_after_payment",
            customer_id=cid,
            account_id=account,
            occurred_at="2026-12-24T10:17:43+08:00",
        ),
    )
    summary = await until(service, cid, "billing-summary", lambda s: _seen(s, 2, "PAY-NOV", 1, "normal"))
    payment = summary["payment"]
    assert payment["outstanding"] == {"fen": 0, "yuan": "0.00"}
    assert payment["status"] == "late_payer"
    assert (payment["invoices_paid_on_time"], payment["invoices_paid_late"], payment["invoices_unpaid"]) == (1, 1, 0)
    assert payment["overdue_invoices"] == 0
    assert payment["last_payment"]["id"] == "PAY-NOV"
    assert payment["last_payment"]["amount"] == {"fen": 14900, "yuan": "149.00"}


def _seen(summary: dict[str, Any], months: int, last_payment: str, failed: int, collection: str) -> bool:
    payment = summary["payment"]
    return (
        len(summary["spend_trend"]) == months
        and (payment["last_payment"] or {}).get("id") == last_payment
        and payment["failed_payments"] == failed
        and payment["overdue_invoices"] + payment["invoices_paid_late"] == 1
        and summary["collection_status"] == collection
        and summary["credit_limit"] is not None
    )


async def test_a_corrected_usage_day_replaces_the_earlier_one_within_a_30_day_window(service, boss):
    cid = "C2003"
    await boss.send_billing(
        usage(boss, cid, "S1", "2026-11-19", "2026-11-20T03:15:00+08:00", voice_minutes=37, sms_count=4, data_mb=2150),
        usage(boss, cid, "S1", "2026-11-10", "2026-11-11T03:15:00+08:00", voice_minutes=25, sms_count=2, data_mb=1230,
              roaming=True, roaming_voice_minutes=18, roaming_data_mb=860),
        usage(boss, cid, "S2", "2026-11-19", "2026-11-20T03:15:07+08:00", data_mb=35),
        usage(boss, cid, "S2", "2026-11-18", "2026-11-19T03:15:07+08:00"),  # a day with nothing used
        usage(boss, cid, "S1", "2026-10-31", "2026-11-01T03:15:00+08:00", voice_minutes=500),  # outside the window
    )  # fmt: skip
    window = {"as_of": "2026-11-30"}
    summary = await until(service, cid, "usage-summary", lambda s: s["data_mb"] == 2150 + 1230 + 35, **window)
    assert summary == {
        "customer_id": cid,
        "from_date": "2026-11-01",
        "to_date": "2026-11-30",
        "days": 30,
        "voice_minutes": 62,
        "sms_count": 6,
        "data_mb": 3415,
        "roaming_voice_minutes": 18,
        "roaming_data_mb": 860,
        "days_active": 2,
        "roaming_days": 1,
        "active_lines": 2,
    }

    # The BOSS re-rates 19 November for S1: the day's totals replace the earlier ones; an older copy changes nothing
    before = await consumed(service, "billing.usage")
    await boss.send_billing(
        usage(boss, cid, "S1", "2026-11-19", "2026-11-21T03:15:00+08:00", voice_minutes=40, sms_count=5, data_mb=2000),
        usage(boss, cid, "S1", "2026-11-19", "2026-11-20T01:00:00+08:00", voice_minutes=999),
    )
    await eventually(consumed_since(service, "billing.usage", before, 2))
    summary = await get(service, cid, "usage-summary", **window)
    assert (summary["voice_minutes"], summary["sms_count"], summary["data_mb"]) == (65, 7, 3265)
    assert summary["days_active"] == 2

    # The window is the 30 days ending as_of: 31 October is in it from 29 November back
    earlier = await get(service, cid, "usage-summary", as_of="2026-11-29")
    assert (earlier["from_date"], earlier["voice_minutes"], earlier["days_active"]) == ("2026-10-31", 565, 3)
    # Without as_of the window ends today in China Standard Time
    today = await get(service, cid, "usage-summary")
    assert today["to_date"] == datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert date.fromisoformat(today["to_date"]) - date.fromisoformat(today["from_date"]) == timedelta(days=29)


async def test_the_timeline_is_newest_first_paged_and_filtered_by_kind(service, boss):
    cid, sid, msisdn = "C2004", "S2004", "13800002004"
    await boss.send(boss.activated(cid, sid, msisdn, "2026-08-01T09:30:00+08:00"))
    await service.wait_for(cid)
    await boss.send_billing(
        invoice(boss, cid, "2026-08", 14900, at="2026-09-01T02:00:00+08:00"),
        usage(boss, cid, sid, "2026-09-04", "2026-09-05T03:15:00+08:00", voice_minutes=3, msisdn=msisdn),
    )
    consent = await service.http.put(
        f"{BASE}/{cid}/consents/sms/marketing",
        json={"granted": True, "source": "app", "recorded_at": "2026-10-01T12:00:00+08:00"},
    )
    assert consent.status_code == 200, consent.text
    dnd = await service.http.put(
        f"{BASE}/{cid}/do-not-disturb",
        json={"enabled": True, "source": "hotline", "recorded_at": "2026-10-02T12:00:00+08:00"},
    )
    assert dnd.status_code == 200, dnd.text

    rows, headers = await timeline_rows(service, cid, 5)
    assert (headers["X-Total-Count"], headers["X-Result-Count"]) == ("5", "5")
    assert [(r["kind"], r["type"], r["occurred_at"]) for r in rows] == [
        ("consent", "customer.profile.dnd_changed.v1", "2026-10-02T12:00:00+08:00"),
        ("consent", "customer.profile.consent_changed.v1", "2026-10-01T12:00:00+08:00"),
        ("billing", USAGE, "2026-09-05T03:15:00+08:00"),
        ("billing", INVOICE, "2026-09-01T02:00:00+08:00"),
        ("billing", "billing.subscription.activated.v1", "2026-08-01T09:30:00+08:00"),
    ]
    summaries = [r["summary"] for r in rows]
    assert summaries[0] == "Do-not-disturb (免打扰) on via hotline"
    assert summaries[1] == "Marketing (营销授权) on sms granted via app"
    assert summaries[2] == "Usage (用量) 2026-09-04 on line 138****2004: 3 min, 0 SMS, 0 MB"
    assert summaries[3] == "Invoice 2026-08 issued (出账): ¥149.00 due 2026-09-20"
    assert summaries[4] == "Line 138****2004 activated (开户): 5G畅享套餐129元 (¥129.00/month)"
    assert all(r["customer_id"] == cid and r["source_event_id"] for r in rows)

    # The consent rows name the customer.profile events that announced the changes
    published = await service.profile_events(expect=4)  # created, updated, consent, dnd
    profile_ids = {e.id for _, e in published if e.type.endswith(("consent_changed.v1", "dnd_changed.v1"))}
    assert {rows[0]["source_event_id"], rows[1]["source_event_id"]} == profile_ids

    page = await service.http.get(f"{BASE}/{cid}/timeline", params={"offset": 1, "limit": 2})
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("5", "2")
    assert page.json() == rows[1:3]
    past_end = await service.http.get(f"{BASE}/{cid}/timeline", params={"offset": 5})
    assert (past_end.json(), past_end.headers["X-Result-Count"]) == ([], "0")

    billing = await service.http.get(f"{BASE}/{cid}/timeline", params={"kind": "billing", "limit": 2})
    assert (billing.headers["X-Total-Count"], billing.headers["X-Result-Count"]) == ("3", "2")
    assert billing.json() == rows[2:4]
    tickets = await service.http.get(f"{BASE}/{cid}/timeline", params={"kind": "ticket"})
    assert (tickets.json(), tickets.headers["X-Total-Count"]) == ([], "0")


async def test_a_redelivered_event_yields_one_timeline_row(service, boss):
    cid = "C2005"
    applied = await consumed(service, "billing.payment", outcome="applied")  # metrics live as long as the process
    duplicated = await consumed(service, "billing.payment", outcome="duplicate")
    failed = boss.billing_example(FAILED, "auto_debit_insufficient_funds", customer_id=cid, account_id="A2005")
    await boss.send_billing(failed, failed, failed)

    async def duplicates() -> bool:
        return await consumed(service, "billing.payment", outcome="duplicate") >= duplicated + 2

    await eventually(duplicates, timeout=15)
    rows, headers = await timeline_rows(service, cid, 1)
    assert headers["X-Total-Count"] == "1"
    assert rows[0]["source_event_id"] == failed.id
    assert rows[0]["summary"] == "Payment failed (缴费失败): ¥149.00 via auto_debit, insufficient_funds"
    summary = await get(service, cid, "billing-summary")
    assert summary["payment"]["failed_payments"] == 1
    assert summary["arpu"] is None and summary["spend_trend"] == []
    assert await consumed(service, "billing.payment", outcome="applied") == applied + 1


def assert_problem(r: Any, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.json()["field"] == field, r.json()


async def test_an_unknown_customer_is_404_and_bad_parameters_are_422_naming_the_field(service, boss):
    for what in ("billing-summary", "usage-summary", "timeline"):
        assert_problem(await service.http.get(f"{BASE}/NOBODY/{what}"), 404, "customer_id")

    cid = "C2006"
    await boss.send(boss.activated(cid, "S2006", "13800002006", "2026-08-01T09:30:00+08:00"))
    await service.wait_for(cid)
    timeline = f"{BASE}/{cid}/timeline"
    assert_problem(await service.http.get(timeline, params={"limit": 1001}), 422, "limit")
    assert_problem(await service.http.get(timeline, params={"limit": 0}), 422, "limit")
    assert_problem(await service.http.get(timeline, params={"offset": -1}), 422, "offset")
    assert_problem(await service.http.get(timeline, params={"kind": "gossip"}), 422, "kind")
    usage_summary = f"{BASE}/{cid}/usage-summary"
    assert_problem(await service.http.get(usage_summary, params={"as_of": "30/11/2026"}), 422, "as_of")
    ok = await service.http.get(timeline, params={"limit": 1000})
    assert ok.status_code == 200
