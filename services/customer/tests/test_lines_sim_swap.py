"""A SIM swap (补换卡) as the BOSS reports it: recorded on the line as its latest event, with no change to the line's
state, plan or the customer's status, and on the timeline with why, where, and the fraud warning an agent needs
before a port-out (携号转网)."""

from __future__ import annotations

from typing import Any

from crm_kit.testing import eventually

BASE = "/api/v1/customers"
SWAPPED = "billing.subscription.sim_swapped.v1"
PORTED_OUT = "billing.subscription.ported_out.v1"


async def timeline(service, cid: str, expect: int) -> list[dict[str, Any]]:
    """The customer's timeline (newest first) once it holds `expect` rows."""

    async def probe() -> list[dict[str, Any]] | None:
        r = await service.http.get(f"{BASE}/{cid}/timeline")
        return r.json() if r.status_code == 200 and int(r.headers["X-Total-Count"]) >= expect else None

    return await eventually(probe, timeout=15)


async def test_a_sim_swap_keeps_the_line_as_it_was_and_is_on_the_timeline_with_its_reason_and_channel(service, boss):
    cid, sid, msisdn = "C5001", "S5001", "13800005001"
    await boss.send(
        boss.activated(cid, sid, msisdn, "2027-01-10T09:30:00+08:00"),
        boss.line("suspended", cid, sid, msisdn, "2027-01-18T21:00:00+08:00", reason="lost_sim"),
    )
    await service.wait_for(cid, lambda c: c["status"] == "suspended")

    await boss.send(
        boss.line(
            "sim_swapped",
            cid,
            sid,
            msisdn,
            "2027-01-19T10:12:00+08:00",
            new_iccid="89860012345678905001",
            previous_iccid="89860098765432105001",
            reason="lost",
            channel="store",
            dealer_code="BJ-HD-STORE-012",
        )
    )

    rows = await timeline(service, cid, 3)
    assert [(r["type"], r["occurred_at"]) for r in rows] == [
        (SWAPPED, "2027-01-19T10:12:00+08:00"),
        ("billing.subscription.suspended.v1", "2027-01-18T21:00:00+08:00"),
        ("billing.subscription.activated.v1", "2027-01-10T09:30:00+08:00"),
    ]
    assert rows[0]["kind"] == "billing"
    assert rows[0]["summary"] == (
        "Line 138****5001 SIM swapped (换卡): reason lost (挂失补卡), channel store (营业厅) at BJ-HD-STORE-012, "
        "new SIM ending 5001; a SIM swap often precedes a fraudulent port-out (携号转网): verify the holder before "
        "porting out"
    )
    customer = await service.customer(cid)
    assert customer is not None
    assert customer["status"] == "suspended", "a new SIM does not lift the barring (挂失停机)"
    line = customer["subscription"][0]
    assert (line["status"], line["statusReason"]) == ("suspended", "lost_sim")
    assert line["plan"]["code"] == "5G-ULT-129"
    assert line["paymentMode"] == "postpaid"

    # The swap is the line's latest event: a plan change dated before it, arriving after it, is stale.
    await boss.send(
        boss.line(
            "plan_changed",
            cid,
            sid,
            msisdn,
            "2027-01-15T00:00:00+08:00",
            from_plan_code="5G-ULT-129",
            plan=boss.PLAN_199,
        ),
        boss.line("resumed", cid, sid, msisdn, "2027-01-19T10:30:00+08:00"),
    )
    customer = await service.wait_for(cid, lambda c: c["status"] == "active")
    assert customer["subscription"][0]["plan"]["code"] == "5G-ULT-129"

    # Nothing about the customer's profile changed with the swap: created and updated at activation, updated when
    # suspended and when resumed, none in between.
    published = await service.profile_events(expect=4)
    assert [e.type for _, e in published] == [
        "customer.profile.created.v1",
        "customer.profile.updated.v1",
        "customer.profile.updated.v1",
        "customer.profile.updated.v1",
    ]
    assert [e.data["status"] for _, e in published[1:]] == ["active", "suspended", "active"]


async def test_an_online_swap_before_a_port_out_tells_its_story_on_the_timeline(service, boss):
    """The contract's own examples: a number moved to an eSIM online late at night, ported out the next day."""
    await boss.send(
        boss.from_example(SWAPPED, "esim_online_before_port_out"),
        boss.from_example(PORTED_OUT, "to_china_unicom"),
    )
    cid = "C310000055555"
    customer = await service.wait_for(cid, lambda c: c["subscription"][0]["status"] == "ported_out")
    assert customer["status"] == "inactive"

    rows = await timeline(service, cid, 2)
    assert [r["type"] for r in rows] == [PORTED_OUT, SWAPPED]
    assert rows[0]["summary"] == "Line 159****1234 ported out (携号转出) to china_unicom"
    assert rows[1]["summary"] == (
        "Line 159****1234 SIM swapped (换卡): reason esim_conversion (转eSIM), channel online (网上营业厅/App), "
        "new SIM ending 1012; a SIM swap often precedes a fraudulent port-out (携号转网): verify the holder before "
        "porting out"
    )
