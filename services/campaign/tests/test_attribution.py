"""Attribution and the report: plan changes and recharges from the BOSS credited to the campaigns whose audience
the customer is in — treatment and control alike, within the window from their assignment — and the report's
uplift, revenue, cost and ROI from them; for retention, customers left with no line open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import REGISTRY

from crm_campaign.domain import attribution, control
from crm_campaign.domain.evaluation import Proportions, incremental_revenue_fen, roi, uplift
from crm_kit.db import Database
from crm_kit.events import CloudEvent
from crm_kit.presentation import SHANGHAI
from crm_kit.testing import read_topic

from .conftest import Campaigns

CAMPAIGNS = "/campaign/v1/campaigns"
UPGRADE = {
    "code": "UPG-199",
    "name": "升档199 首月半价",
    "kind": "plan_upgrade",
    "cost_fen": 9_950,
    "expected_value_fen": 84_000,
    "plan_code": "5G-ULT-199",
}
CUSTOMERS = [f"C{n:03d}" for n in range(1, 41)]


async def population(c: Campaigns) -> None:
    events = []
    for cid in CUSTOMERS:
        events.append(c.event("customer.profile.created.v1", customer_id=cid))
        events.append(
            c.event("customer.segment.membership_changed.v1", customer_id=cid, segment_id="SEG-UP", change="joined")
        )
        events.append(
            c.event(
                "customer.profile.consent_changed.v1",
                customer_id=cid,
                channel="sms",
                purpose="marketing",
                granted=True,
                do_not_disturb={"enabled": False, "until": None},
            )
        )
    await c.send(*events)


async def launched(c: Campaigns, **changes: Any) -> str:
    body = {
        "name": "升档活动",
        "objective": "upsell",
        "channels": ["sms"],
        "audience": {"segments": ["SEG-UP"]},
        "offers": [UPGRADE],
        "holdout_share": "0.5",
        "response_window_days": 30,
        "starts_at": c.clock.now.isoformat(),
        "ends_at": (c.clock.now + timedelta(days=60)).isoformat(),
        **changes,
    }
    r = await c.http.post(CAMPAIGNS, json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for step in ("schedule", "launch", "dispatch"):
        assert (await c.http.post(f"{CAMPAIGNS}/{cid}/{step}")).status_code == 200
    return cid  # type: ignore[no-any-return]


def plan_change(c: Campaigns, cid: str, plan: str, days: int) -> CloudEvent:
    at = (c.clock.now + timedelta(days=days)).isoformat()
    return c.event(
        "billing.subscription.plan_changed.v1",
        customer_id=cid,
        occurred_at=at,
        plan={"code": plan, "name": plan, "monthly_fee_fen": 19_900},
        boss_event_id=f"BOSS-PC-{cid}-{plan}-{days}",
    )


async def test_responses_in_both_groups_make_the_report(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    cid = await launched(c)
    treatment, held_out = control.assign(cid, CUSTOMERS, Decimal("0.5"))
    takers = treatment[:6] + held_out[:2]

    await c.send(
        *(plan_change(c, who, "5G-ULT-199", 3) for who in takers),
        plan_change(c, treatment[0], "5G-ULT-199", 4),  # a second take-up counts once
        plan_change(c, treatment[6], "5G-ULT-99", 3),  # another plan is not the offer
        plan_change(c, treatment[7], "5G-ULT-199", 31),  # after the 30-day window
    )

    report = (await c.http.get(f"{CAMPAIGNS}/{cid}/report")).json()
    assert report["treatment"] == {
        "customers": len(treatment),
        "contacted": len(treatment),
        "delivered": 0,
        "responded": 6,
        "value_fen": 6 * 84_000,
        "churned": 0,
    }
    assert report["control"] == {
        "customers": len(held_out),
        "contacted": 0,
        "delivered": 0,
        "responded": 2,
        "value_fen": 2 * 84_000,
        "churned": 0,
    }
    expected = uplift(Proportions(len(treatment), 6, len(held_out), 2))
    assert report["response"]["uplift"] == expected.uplift
    assert (report["response"]["ci_low"], report["response"]["ci_high"]) == (expected.ci_low, expected.ci_high)
    revenue = incremental_revenue_fen(len(treatment), 6 * 84_000, len(held_out), 2 * 84_000)
    assert report["incremental_revenue_fen"] == revenue
    assert report["cost_fen"] == 6 * 9_950, "only the treated took the offer at its cost"
    assert Decimal(report["roi"]) == roi(revenue, 6 * 9_950)
    assert report["retention"] is None
    (offer,) = report["offers"]
    assert (offer["code"], offer["contacted"], offer["treatment_responded"], offer["control_responded"]) == (
        "UPG-199",
        len(treatment),
        6,
        2,
    )
    assert offer["response"] == report["response"], "the only offer is the whole campaign"
    assert (offer["incremental_revenue_fen"], offer["cost_fen"]) == (revenue, 6 * 9_950)

    page = await c.http.get(f"{CAMPAIGNS}/{cid}/report.html")
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count("data:image/png;base64,") == 1, "the response chart, no churn chart for an upsell"
    assert f"{expected.uplift:+.2%}" in page.text

    published = await read_topic(c.bootstrap, "campaign.contact", expect=len(treatment) + 6)
    responded = [CloudEvent.model_validate_json(r.value or b"") for r in published]
    responded = [e for e in responded if e.type == "campaign.contact.responded.v1"]
    for event in responded:
        c.contracts.validate_event(event)
    assert sorted(e.subject for e in responded) == sorted(treatment[:6])

    db = Database(c.database_url)
    try:
        await attribution.refresh_gauges(db)
        gauge = REGISTRY.get_sample_value
        assert gauge("crm_campaign_response_uplift", {"campaign": cid}) == expected.uplift
        assert gauge("crm_campaign_group_customers", {"campaign": cid, "group": "treatment"}) == len(treatment)
        assert gauge("crm_campaign_group_responded", {"campaign": cid, "group": "control"}) == 2
        assert (await c.http.post(f"{CAMPAIGNS}/{cid}/complete")).status_code == 200
        await attribution.refresh_gauges(db)
        assert gauge("crm_campaign_response_uplift", {"campaign": cid}) is None, "a completed campaign leaves them"
        assert gauge("crm_campaign_group_customers", {"campaign": cid, "group": "treatment"}) is None
    finally:
        await db.dispose()


async def test_a_retention_campaign_reports_churn_in_each_group(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    cid = await launched(c, name="维系活动", objective="retention")
    treatment, held_out = control.assign(cid, CUSTOMERS, Decimal("0.5"))

    def gone(who: str, days: int) -> CloudEvent:
        at = (c.clock.now + timedelta(days=days)).isoformat()
        return c.event("customer.profile.updated.v1", customer_id=who, active_lines=0, total_lines=1, updated_at=at)

    await c.send(gone(treatment[0], 10), *(gone(who, 20) for who in held_out[:4]), gone(treatment[1], 61))
    report = (await c.http.get(f"{CAMPAIGNS}/{cid}/report")).json()
    assert (report["treatment"]["churned"], report["control"]["churned"]) == (1, 4)
    expected = uplift(Proportions(len(treatment), 1, len(held_out), 4))
    assert report["retention"]["uplift"] == expected.uplift < 0, "fewer left in treatment"
    page = (await c.http.get(f"{CAMPAIGNS}/{cid}/report.html")).text
    assert page.count("data:image/png;base64,") == 2, "response and churn charts"


RECHARGE = {
    "code": "RCH-100",
    "name": "充100送20",
    "kind": "discount",
    "cost_fen": 2_000,
    "expected_value_fen": 10_000,
    "min_recharge_fen": 10_000,
}

STREAMING = {
    "code": "STREAM-10G",
    "name": "10GB 视频流量包",
    "kind": "data_pack",
    "cost_fen": 500,
    "expected_value_fen": 3_000,
    "addon_code": "PACK-DATA-10G",
}


async def test_the_report_gives_each_offer_its_own_take_up_and_uplift(campaign: Campaigns) -> None:
    """Contacts carry the first offer by code (the recharge); a customer may take up the other one instead, and each
    offer is measured against the same groups."""
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    await population(c)
    cid = await launched(c, offers=[UPGRADE, RECHARGE, STREAMING])
    treatment, held_out = control.assign(cid, CUSTOMERS, Decimal("0.5"))

    def recharge(who: str, amount_fen: int) -> CloudEvent:
        at = (c.clock.now + timedelta(days=2)).isoformat()
        return c.event(
            "billing.payment.recharged.v1",
            customer_id=who,
            occurred_at=at,
            amount_fen=amount_fen,
            boss_event_id=f"BOSS-RC-{who}-{amount_fen}",
        )

    def addon(who: str, code: str) -> CloudEvent:
        at = (c.clock.now + timedelta(days=4)).isoformat()
        data = c.example("billing.subscription.addon_ordered.v1")
        return c.event(
            "billing.subscription.addon_ordered.v1",
            customer_id=who,
            occurred_at=at,
            addon={**data["addon"], "code": code},
            boss_event_id=f"BOSS-AO-{who}-{code}",
        )

    await c.send(
        *(addon(who, "PACK-DATA-10G") for who in treatment[7:10]),
        addon(treatment[10], "PACK-DATA-30G"),  # another pack is not the offer
        *(recharge(who, 10_000) for who in treatment[:5]),
        recharge(held_out[0], 20_000),
        recharge(held_out[1], 5_000),  # less than the offer asks
        *(plan_change(c, who, "5G-ULT-199", 3) for who in treatment[5:7]),
        plan_change(c, held_out[2], "5G-ULT-199", 3),
    )

    report = (await c.http.get(f"{CAMPAIGNS}/{cid}/report")).json()
    by_code = {o["code"]: o for o in report["offers"]}
    assert list(by_code) == ["RCH-100", "STREAM-10G", "UPG-199"]
    taken = {code: (o["contacted"], o["treatment_responded"], o["control_responded"]) for code, o in by_code.items()}
    assert taken == {"RCH-100": (len(treatment), 5, 1), "STREAM-10G": (0, 3, 0), "UPG-199": (0, 2, 1)}
    for code, treated_taken, control_taken, value, cost in (
        ("RCH-100", 5, 1, 10_000, 2_000),
        ("STREAM-10G", 3, 0, 3_000, 500),
        ("UPG-199", 2, 1, 84_000, 9_950),
    ):
        expected = uplift(Proportions(len(treatment), treated_taken, len(held_out), control_taken))
        offer = by_code[code]
        assert (offer["response"]["uplift"], offer["response"]["p_value"]) == (expected.uplift, expected.p_value)
        revenue = incremental_revenue_fen(len(treatment), treated_taken * value, len(held_out), control_taken * value)
        assert (offer["value_fen"], offer["cost_fen"]) == (treated_taken * value, treated_taken * cost)
        assert offer["incremental_revenue_fen"] == revenue
        assert Decimal(offer["roi"]) == roi(revenue, treated_taken * cost)
    assert report["treatment"]["responded"] == 10 and report["control"]["responded"] == 2
    assert report["cost_fen"] == 5 * 2_000 + 3 * 500 + 2 * 9_950

    page = (await c.http.get(f"{CAMPAIGNS}/{cid}/report.html")).text
    assert "By offer" in page and "充100送20" in page and "升档199 首月半价" in page
