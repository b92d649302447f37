"""An add-on order (叠加包/增值业务订购) as the BOSS reports it: recorded on the line as its latest event with no change
to the line's state or plan nor to the customer's profile, and on the timeline (and so in the 360 view) with what
was ordered, its kind, its price and how long it lasts."""

from __future__ import annotations

from .test_lines_sim_swap import timeline

ORDERED = "billing.subscription.addon_ordered.v1"


async def test_an_add_on_order_is_on_the_timeline_and_in_the_360_view_and_leaves_the_line_as_it_was(service, boss):
    cid, sid, msisdn = "C5101", "S5101", "13800005101"
    roaming = {"code": "PACK-ROAM-7D", "name": "境外漫游7天流量包", "kind": "roaming_pack", "price_fen": 6000}
    await boss.send(
        boss.activated(cid, sid, msisdn, "2027-02-01T09:30:00+08:00"),
        boss.line(
            "addon_ordered",
            cid,
            sid,
            msisdn,
            "2027-02-12T07:40:00+08:00",
            addon={**roaming, "validity_days": 7},
        ),
        boss.from_example(
            ORDERED,
            "data_pack_10g",
            customer_id=cid,
            account_id=f"A{cid[1:]}",
            subscription_id=sid,
            msisdn=msisdn,
            occurred_at="2027-02-20T14:05:00+08:00",
        ),
    )

    rows = await timeline(service, cid, 3)
    assert [(r["type"], r["kind"]) for r in rows[:2]] == [(ORDERED, "billing"), (ORDERED, "billing")]
    assert [r["summary"] for r in rows[:2]] == [
        "Line 138****5101 ordered add-on (叠加包订购): 10GB流量包(月包) (data_pack, 流量包), ¥30.00, "
        "renews monthly (月包)",
        "Line 138****5101 ordered add-on (叠加包订购): 境外漫游7天流量包 (roaming_pack, 漫游包), ¥60.00, valid 7 days",
    ]

    view = await service.view360(cid, lambda v: len(v["timeline"]) >= 3)
    assert [row["summary"] for row in view["timeline"][:2]] == [r["summary"] for r in rows[:2]]
    customer = await service.customer(cid)
    assert customer is not None
    assert customer["status"] == "active"
    line = customer["subscription"][0]
    assert (line["status"], line["plan"]["code"]) == ("active", "5G-ULT-129")
    published = await service.profile_events(expect=2)
    assert [e.type for _, e in published] == ["customer.profile.created.v1", "customer.profile.updated.v1"]
