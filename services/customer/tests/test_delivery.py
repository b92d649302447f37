"""At-least-once delivery, exactly-once effects: a redelivered event is applied once (inbox), and an event
older than what the line already reflects (out of order) changes nothing."""

from __future__ import annotations

PLAN_299 = {"code": "5G-ULT-299", "name": "5G畅享套餐299元", "monthly_fee_fen": 29900}
PLAN_CHANGED = "billing.subscription.plan_changed.v1"


async def test_the_same_event_delivered_twice_is_applied_once(service, boss):
    cid, sid, msisdn = "C900", "S900", "13800000900"
    await boss.send(boss.activated(cid, sid, msisdn, "2026-11-20T09:30:00+08:00"))
    await service.wait_for(cid)
    applied = await service.consumed(type=PLAN_CHANGED, outcome="applied")
    duplicates = await service.consumed(type=PLAN_CHANGED, outcome="duplicate")

    change = boss.line(
        "plan_changed", cid, sid, msisdn, "2026-12-01T00:00:00+08:00", from_plan_code="5G-ULT-129", plan=boss.PLAN_199
    )
    # A redelivery carries the same event id. The second copy here differs (later, another plan) so that
    # applying it would show; only the inbox can tell it is the same event.
    same_id_later = boss.line(
        "plan_changed",
        cid,
        sid,
        msisdn,
        "2026-12-15T00:00:00+08:00",
        from_plan_code="5G-ULT-199",
        plan=PLAN_299,
        event_id=change.id,
    )
    await boss.send(change, change, same_id_later)

    await service.wait_consumed(duplicates + 2, type=PLAN_CHANGED, outcome="duplicate")
    assert await service.consumed(type=PLAN_CHANGED, outcome="applied") == applied + 1
    customer = await service.customer(cid)
    assert customer is not None
    assert customer["subscription"][0]["plan"]["code"] == "5G-ULT-199"
    assert customer["subscription"][0]["plan"]["monthlyFee"]["valueFen"] == 19900


async def test_a_stale_event_arriving_after_a_newer_one_changes_nothing(service, boss):
    cid, sid, msisdn = "C910", "S910", "13800000910"
    await boss.send(
        boss.activated(cid, sid, msisdn, "2026-11-20T09:30:00+08:00", name="张伟", region="BJ"),
        boss.line("suspended", cid, sid, msisdn, "2027-01-05T02:00:00+08:00", reason="arrears"),
    )
    before = await service.wait_for(cid, lambda c: c["status"] == "suspended")
    applied = await service.consumed(outcome="applied")

    await boss.send(
        # the BOSS resumed the line on 1 January, but that reached us after the suspension of 5 January
        boss.line("resumed", cid, sid, msisdn, "2027-01-01T08:00:00+08:00"),
        # an old activation replayed with other details
        boss.activated(
            cid,
            sid,
            msisdn,
            "2026-11-01T09:00:00+08:00",
            name="李四",
            region="SH",
            customer_type="organization",
            id_card_no=None,
            plan=boss.PLAN_199,
            payment_mode="prepaid",
            account="A910OLD",
        ),
    )
    await service.wait_consumed(applied + 2, outcome="applied")

    after = await service.customer(cid)
    assert after == before
    assert after is not None
    assert after["status"] == "suspended"
    assert after["name"] == "张伟"
    assert [a["id"] for a in after["account"]] == ["A910"]

    # and nothing was published for them: the next real change is the next profile event
    await boss.send(boss.line("resumed", cid, sid, msisdn, "2027-01-06T10:00:00+08:00"))
    await service.wait_for(cid, lambda c: c["status"] == "active")
    events = [e for key, e in await service.profile_events(expect=4) if key == cid]
    assert [(e.type.split(".")[2], e.data["status"]) for e in events] == [
        ("created", "active"),
        ("updated", "active"),
        ("updated", "suspended"),
        ("updated", "active"),
    ]
