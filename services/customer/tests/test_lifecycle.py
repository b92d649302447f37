"""A line's life as the BOSS reports it, and the customer status it implies
(active: a line in service; suspended: lines exist but all are suspended; inactive: no open line)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


def _line(customer: dict[str, Any], line_id: str) -> dict[str, Any]:
    return next(s for s in customer["subscription"] if s["id"] == line_id)


def _line_is(line_id: str, status: str):
    return lambda c: any(s["id"] == line_id and s["status"] == status for s in c["subscription"])


def _status_from_lines(customer: dict[str, Any]) -> str:
    statuses = {s["status"] for s in customer["subscription"]}
    return "active" if "active" in statuses else "suspended" if "suspended" in statuses else "inactive"


@contextlib.asynccontextmanager
async def _reading_all_along(service, customer_id: str):
    """Reads the customer continuously while events are applied; yields the list of reads."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            found = await service.customer(customer_id)
            if found is not None:
                seen.append(found)
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    try:
        yield seen
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_a_line_through_plan_change_suspension_resumption_and_termination(service, boss):
    cid, sid, msisdn = "C100", "S100", "13800000100"
    await boss.send(boss.activated(cid, sid, msisdn, "2026-11-20T09:30:00+08:00"))
    customer = await service.wait_for(cid)
    assert customer["status"] == "active"

    await boss.send(
        boss.line(
            "plan_changed",
            cid,
            sid,
            msisdn,
            "2026-12-01T00:00:00+08:00",
            from_plan_code="5G-ULT-129",
            plan=boss.PLAN_199,
        )
    )
    customer = await service.wait_for(cid, lambda c: c["subscription"][0]["plan"]["code"] == "5G-ULT-199")
    assert customer["status"] == "active"
    assert customer["subscription"][0]["plan"] == {
        "code": "5G-ULT-199",
        "name": "5G畅享套餐199元",
        "monthlyFee": {"unit": "CNY", "value": "199.00", "valueFen": 19900},
    }
    assert customer["subscription"][0]["paymentMode"] == "postpaid"  # a plan change keeps what it does not carry

    await boss.send(boss.line("suspended", cid, sid, msisdn, "2027-01-05T02:00:00+08:00", reason="arrears"))
    customer = await service.wait_for(cid, lambda c: c["status"] == "suspended")
    line = _line(customer, sid)
    assert (line["status"], line["statusReason"]) == ("suspended", "arrears")
    assert line["plan"]["code"] == "5G-ULT-199"
    assert customer["contactMedium"][0]["characteristic"]["phoneNumber"] == "138****0100"  # 停机保号: still theirs

    await boss.send(boss.line("resumed", cid, sid, msisdn, "2027-01-06T10:17:43+08:00"))
    customer = await service.wait_for(cid, lambda c: c["status"] == "active")
    line = _line(customer, sid)
    assert (line["status"], line["statusReason"], line["endDate"]) == ("active", None, None)

    await boss.send(boss.line("terminated", cid, sid, msisdn, "2027-03-31T16:45:00+08:00", reason="customer_request"))
    customer = await service.wait_for(cid, lambda c: c["status"] == "inactive")
    line = _line(customer, sid)
    assert (line["status"], line["statusReason"]) == ("terminated", "customer_request")
    assert line["endDate"] == "2027-03-31T16:45:00+08:00"
    assert line["activationDate"] == "2026-11-20T09:30:00+08:00"
    assert customer["contactMedium"] == []  # a closed line is no way to reach the customer
    assert customer["name"] == "张伟"


async def test_a_ported_out_line_leaves_the_customer_inactive_even_when_first_heard_of_then(service, boss):
    cid, sid, msisdn = "C200", "S200", "15900002000"
    await boss.send(
        boss.activated(cid, sid, msisdn, "2026-05-01T10:00:00+08:00"),
        boss.line("ported_out", cid, sid, msisdn, "2027-02-14T11:20:00+08:00", recipient_operator="china_unicom"),
        # a customer the CRM first hears of through a line event: created, without the details it never got
        boss.from_example("billing.subscription.ported_out.v1", "to_china_unicom"),
    )

    customer = await service.wait_for(cid, lambda c: c["status"] == "inactive")

    line = _line(customer, sid)
    assert line["status"] == "ported_out"
    assert line["endDate"] == "2027-02-14T11:20:00+08:00"
    assert customer["contactMedium"] == []

    unknown = await service.wait_for("C310000055555")
    assert unknown["status"] == "inactive"
    assert unknown["name"] is None
    assert unknown["subscription"][0]["status"] == "ported_out"
    assert unknown["subscription"][0]["msisdn"] == "159****1234"


async def test_a_customer_stays_active_while_one_of_two_lines_is_in_service(service, boss):
    cid = "C300"
    first, second = ("S301", "13800000301"), ("S302", "13800000302")
    async with _reading_all_along(service, cid) as reads:
        await _two_lines(service, boss, cid, first, second)
    # every read, even one racing the consumer, shows a status that agrees with the lines beside it
    assert len(reads) > 10
    assert [(c["status"], _status_from_lines(c)) for c in reads if c["status"] != _status_from_lines(c)] == []


async def _two_lines(service, boss, cid: str, first: tuple[str, str], second: tuple[str, str]) -> None:
    await boss.send(
        boss.activated(cid, *first, "2026-11-20T09:30:00+08:00"),
        boss.activated(cid, *second, "2026-11-21T09:30:00+08:00", plan=boss.PLAN_199),
    )
    customer = await service.wait_for(cid, lambda c: len(c["subscription"]) == 2)
    assert customer["status"] == "active"
    assert [m["characteristic"]["phoneNumber"] for m in customer["contactMedium"]] == ["138****0301", "138****0302"]
    assert [m["preferred"] for m in customer["contactMedium"]] == [True, False]

    await boss.send(boss.line("suspended", cid, *first, "2027-01-05T02:00:00+08:00", reason="lost_sim"))
    customer = await service.wait_for(cid, _line_is("S301", "suspended"))
    assert customer["status"] == "active"

    await boss.send(boss.line("suspended", cid, *second, "2027-01-06T02:00:00+08:00", reason="arrears"))
    customer = await service.wait_for(cid, _line_is("S302", "suspended"))
    assert customer["status"] == "suspended"

    await boss.send(boss.line("terminated", cid, *first, "2027-01-07T09:00:00+08:00", reason="customer_request"))
    customer = await service.wait_for(cid, _line_is("S301", "terminated"))
    assert customer["status"] == "suspended"  # the other line is still there, suspended

    await boss.send(boss.line("resumed", cid, *second, "2027-01-08T09:00:00+08:00"))
    customer = await service.wait_for(cid, _line_is("S302", "active"))
    assert customer["status"] == "active"
    assert [m["characteristic"]["phoneNumber"] for m in customer["contactMedium"]] == ["138****0302"]

    # barred and re-enabled over and over (say, fraud checks): the customer's status follows every change
    applied = await service.consumed(outcome="applied")
    flips = [
        boss.line("suspended", cid, *second, f"2027-02-{day:02d}T09:00:00+08:00", reason="fraud")
        if day % 2
        else boss.line("resumed", cid, *second, f"2027-02-{day:02d}T09:00:00+08:00")
        for day in range(1, 22)
    ]
    await boss.send(*flips)
    await service.wait_consumed(applied + len(flips), outcome="applied")
    customer = await service.customer(cid)
    assert customer is not None
    assert customer["status"] == "suspended"
    assert _line(customer, "S302")["statusReason"] == "fraud"
