"""Campaigns through the API: audiences from the campaign's own view of customers (kept from customer.*,
churn.score and ticketing.ticket events), the preview, and a campaign's life from draft to completed or
cancelled, with every refusal a problem+json naming what is wrong."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm_campaign.domain import control
from crm_campaign.models import Assignment, Consent, Customer
from crm_kit.db import Database
from crm_kit.testing import assert_problem

from .conftest import AGENT, ANALYST, Campaigns

CAMPAIGNS = "/campaign/v1/campaigns"
HIGH_VALUE_AT_RISK = {
    "segments": ["SEG-BJ5G"],
    "rule": {
        "all": [
            {"field": "churn_band", "op": "eq", "value": "high"},
            {"field": "open_complaints", "op": "eq", "value": 0},
        ]
    },
}
UPGRADE = {
    "code": "UPG-199",
    "name": "5G畅享199 升档礼",
    "kind": "plan_upgrade",
    "cost_fen": 3_000,
    "expected_value_fen": 12_000,
    "plan_code": "5G-ULT-199",
}


def draft(c: Campaigns, **changes: Any) -> dict[str, Any]:
    start = c.clock.now + timedelta(days=1)
    return {
        "name": "存量维系 11月",
        "objective": "retention",
        "channels": ["outbound_call", "sms"],
        "audience": HIGH_VALUE_AT_RISK,
        "offers": [UPGRADE],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=30)).isoformat(),
        **changes,
    }


async def people(c: Campaigns) -> None:
    """Eight customers of Beijing's 5G segment and one outside it: C1–C4 at high churn risk, C4 with an open
    complaint, C5 at low risk, C6 erased, C7 merged into C1, C9 high risk but not in the segment."""
    events = []
    for n in range(1, 10):
        cid = f"C{n}"
        events.append(c.event("customer.profile.created.v1", customer_id=cid, region="BJ"))
        if n != 9:
            events.append(
                c.event(
                    "customer.segment.membership_changed.v1", customer_id=cid, segment_id="SEG-BJ5G", change="joined"
                )
            )
        band = "low" if n == 5 else "high"
        events.append(c.event("churn.score.computed.v1", customer_id=cid, model_kind="churn", risk_band=band))
    events.append(c.event("ticketing.ticket.created.v1", customer_id="C4", ticket_id="TT-C4"))
    events.append(c.event("customer.profile.erased.v1", customer_id="C6"))
    events.append(c.event("customer.profile.merged.v1", survivor_id="C1", merged_id="C7"))
    await c.send(*events)


async def create(c: Campaigns, **changes: Any) -> dict[str, Any]:
    r = await c.http.post(CAMPAIGNS, json=draft(c, **changes))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{CAMPAIGNS}/{r.json()['id']}"
    return r.json()  # type: ignore[no-any-return]


async def test_the_audience_is_the_segment_and_rule_over_the_customers_the_events_describe(campaign: Campaigns) -> None:
    await people(campaign)
    created = await create(campaign)
    assert (created["status"], created["purpose"], created["holdout_share"]) == ("draft", "marketing", "0.100")

    r = await campaign.http.post(f"{CAMPAIGNS}/{created['id']}/audience/preview")
    assert r.status_code == 200, r.text
    preview = r.json()
    # C4 has an open complaint, C5 is at low risk, C6 is erased, C7 merged away, C9 outside the segment
    assert preview["sample"] == ["C1", "C2", "C3", "C8"]
    assert preview["count"] == 4
    treatment, held_out = control.assign(created["id"], preview["sample"], control.DEFAULT_HOLDOUT)
    assert (preview["treatment"], preview["control"]) == (len(treatment), len(held_out))

    await campaign.send(campaign.event("ticketing.ticket.closed.v1", customer_id="C4", ticket_id="TT-C4"))
    again = (await campaign.http.post(f"{CAMPAIGNS}/{created['id']}/audience/preview")).json()
    assert again["sample"] == ["C1", "C2", "C3", "C4", "C8"], "a closed complaint no longer keeps C4 out"


async def test_consents_and_do_not_disturb_are_kept_per_customer(campaign: Campaigns) -> None:
    await campaign.send(
        campaign.event("customer.profile.created.v1", customer_id="C1"),
        campaign.event(
            "customer.profile.consent_changed.v1", customer_id="C1", channel="sms", purpose="marketing", granted=False
        ),
        campaign.event(
            "customer.profile.dnd_changed.v1",
            customer_id="C1",
            enabled=True,
            until="2026-12-31T00:00:00+08:00",
            recorded_at="2026-11-20T10:00:00+08:00",
        ),
    )
    db = Database(campaign.database_url)
    try:
        async with db.sessions() as session:
            consents = [(c.channel, c.purpose, c.granted) for c in await session.scalars(select(Consent))]
            customer = await session.get(Customer, "C1")
    finally:
        await db.dispose()
    assert ("sms", "marketing", False) in consents
    assert customer is not None and customer.dnd_enabled
    assert customer.dnd_until is not None and customer.dnd_until.isoformat() == "2026-12-30T16:00:00+00:00"


async def test_a_campaign_is_scheduled_launched_split_and_completed(campaign: Campaigns) -> None:
    await people(campaign)
    created = await create(campaign)
    cid = created["id"]

    scheduled = await campaign.http.post(f"{CAMPAIGNS}/{cid}/schedule")
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{cid}/launch"), 409, "starts_at")

    campaign.clock.now += timedelta(days=2)
    launched = await campaign.http.post(f"{CAMPAIGNS}/{cid}/launch")
    assert launched.status_code == 200, launched.text
    body = launched.json()
    assert body["status"] == "running"
    assert body["treatment"] + body["control"] == 4
    db = Database(campaign.database_url)
    try:
        async with db.sessions() as session:
            groups = {a.customer_id: a.group for a in await session.scalars(select(Assignment))}
    finally:
        await db.dispose()
    treatment, held_out = control.assign(cid, ["C1", "C2", "C3", "C8"], control.DEFAULT_HOLDOUT)
    assert groups == {**dict.fromkeys(treatment, "treatment"), **dict.fromkeys(held_out, "control")}
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{cid}/launch"), 409, "status")

    completed = await campaign.http.post(f"{CAMPAIGNS}/{cid}/complete")
    assert completed.json()["status"] == "completed"
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{cid}/cancel", json={"reason": "late"}), 409, "status")

    listed = await campaign.http.get(CAMPAIGNS, params={"status": "completed"})
    assert listed.json() == [completed.json()], "a campaign listed shows its offers and groups as read alone"
    assert listed.json()[0]["offers"] and listed.json()[0]["treatment"] + listed.json()[0]["control"] == 4
    assert listed.headers["X-Total-Count"] == "1"


async def test_campaigns_naming_one_holdout_key_hold_out_the_same_customers(campaign: Campaigns) -> None:
    await campaign.send(
        *(campaign.event("customer.profile.created.v1", customer_id=f"W{n:03d}", region="GD") for n in range(1, 201))
    )
    everyone = {"rule": {"field": "region", "op": "eq", "value": "GD"}}
    waves = []
    for wave, key in (("一波", "PROG-GD-2026"), ("二波", "PROG-GD-2026"), ("三波", None)):
        created = await create(
            campaign, name=f"广东维系{wave}", audience=everyone, holdout_share="0.3", holdout_key=key
        )
        assert created["holdout_key"] == (key or created["id"])
        assert (await campaign.http.post(f"{CAMPAIGNS}/{created['id']}/schedule")).status_code == 200
        waves.append(created["id"])
    campaign.clock.now += timedelta(days=2)
    for cid in waves:
        assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/launch")).status_code == 200
    db = Database(campaign.database_url)
    try:
        async with db.sessions() as session:
            rows = await session.execute(select(Assignment.campaign_id, Assignment.customer_id, Assignment.group))
            held_out: dict[str, set[str]] = {cid: set() for cid in waves}
            for campaign_id, customer_id, group in rows:
                if group == "control":
                    held_out[campaign_id].add(customer_id)
    finally:
        await db.dispose()
    first, second, own = (held_out[cid] for cid in waves)
    assert 30 <= len(first) <= 90, "about 30% of 200"
    assert first == second, "one key, one standing control group"
    assert first != own and len(first & own) < len(first), "a campaign's own key draws its own holdout"


async def test_scheduling_refuses_what_cannot_run(campaign: Campaigns) -> None:
    await people(campaign)
    no_audience = await create(campaign, name="无人群", audience=None)
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{no_audience['id']}/schedule"), 422, "audience")
    no_offer = await create(campaign, name="无优惠", offers=[])
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{no_offer['id']}/schedule"), 422, "offers")
    nobody = await create(campaign, name="无人", audience={"rule": {"field": "region", "op": "eq", "value": "GZ"}})
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{nobody['id']}/schedule"), 422, "audience")
    care = await create(campaign, name="关怀", objective="care", offers=[], priority=10)
    assert (await campaign.http.post(f"{CAMPAIGNS}/{care['id']}/schedule")).status_code == 200, "care needs no offer"

    first = await create(campaign, name="维系 A")
    assert (await campaign.http.post(f"{CAMPAIGNS}/{first['id']}/schedule")).status_code == 200
    same_priority = await create(campaign, name="维系 B")
    body = assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{same_priority['id']}/schedule"), 409, "priority")
    assert first["id"] in body["detail"]
    higher = await create(campaign, name="维系 C", priority=80)
    assert (await campaign.http.post(f"{CAMPAIGNS}/{higher['id']}/schedule")).status_code == 200

    cancelled = await campaign.http.post(f"{CAMPAIGNS}/{first['id']}/cancel", json={"reason": "budget cut"})
    assert (cancelled.json()["status"], cancelled.json()["cancel_reason"]) == ("cancelled", "budget cut")
    assert (await campaign.http.post(f"{CAMPAIGNS}/{same_priority['id']}/schedule")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"audience": {"rule": {"field": "shoe_size", "op": "eq", "value": 42}}}, "audience.rule.field"),
        ({"audience": {"rule": {"field": "churn_band", "op": "eq", "value": "extreme"}}}, "audience.rule.value"),
        ({"audience": {"rule": {"field": "churn_score", "op": "gte", "value": "high"}}}, "audience.rule.value"),
        ({"objective": "spam"}, "objective"),
        ({"channels": []}, "channels"),
        ({"channels": ["carrier_pigeon"]}, "channels[0]"),
        ({"offers": [UPGRADE, UPGRADE]}, "offers"),
        ({"offers": [{**UPGRADE, "cost_fen": -1}]}, "offers[0].cost_fen"),
        ({"holdout_share": "0.9"}, "holdout_share"),
        ({"starts_at": "2026-12-01"}, "starts_at"),
        ({"ends_at": "2026-11-01T00:00:00+08:00"}, "ends_at"),
        ({"budget": 1}, "budget"),
    ],
)
async def test_bad_campaigns_get_problems_naming_the_field(
    campaign: Campaigns, changes: dict[str, Any], field: str
) -> None:
    assert_problem(await campaign.http.post(CAMPAIGNS, json=draft(campaign, **changes)), 422, field)


async def test_who_may_run_and_who_may_read(campaign: Campaigns) -> None:
    created = await create(campaign)
    assert_problem(await campaign.http.post(CAMPAIGNS, json=draft(campaign, name="x"), headers=ANALYST), 403)
    assert (await campaign.http.get(f"{CAMPAIGNS}/{created['id']}", headers=ANALYST)).status_code == 200
    assert_problem(await campaign.http.get(CAMPAIGNS, headers=AGENT), 403)
    assert_problem(await campaign.http.get(f"{CAMPAIGNS}/CMP-NOPE"), 404, "campaign_id")
    assert_problem(await campaign.http.post(CAMPAIGNS, json=draft(campaign)), 409, "name")
