"""Triggered retention: a running campaign takes in the customers the churn model moves into its band, of the value
tiers it names, and the next dispatch calls them; a score that leaves the band where it was, or a customer of
another tier, does not join."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crm_campaign.models import Assignment
from crm_kit.db import Database
from crm_kit.events import CloudEvent
from crm_kit.presentation import SHANGHAI
from crm_kit.testing import assert_problem

from .conftest import Campaigns

CAMPAIGNS = "/campaign/v1/campaigns"
RETAIN = {
    "code": "RET-CALL",
    "name": "高价值挽留: 话费8折12个月",
    "kind": "discount",
    "cost_fen": 20_000,
    "expected_value_fen": 150_000,
}


def scored(c: Campaigns, customer_id: str, band: str, minutes: int) -> CloudEvent:
    """The churn model's score for the customer, `minutes` after the test's now."""
    at = (c.clock.now + timedelta(minutes=minutes)).isoformat()
    return c.event(
        "churn.score.computed.v1",
        customer_id=customer_id,
        model_kind="churn",
        risk_band=band,
        occurred_at=at,
        scored_at=at,
    )


async def assigned(c: Campaigns, campaign_id: str) -> dict[str, str]:
    db = Database(c.database_url)
    try:
        async with db.sessions() as session:
            rows = await session.scalars(select(Assignment).where(Assignment.campaign_id == campaign_id))
            return {a.customer_id: a.group for a in rows}
    finally:
        await db.dispose()


async def test_a_high_value_customer_moving_to_high_risk_gets_a_retention_call(campaign: Campaigns) -> None:
    c = campaign
    c.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    setup = []
    for cid, tier in (("C1", "high"), ("C2", "low"), ("C3", "high")):
        setup.append(c.event("customer.profile.created.v1", customer_id=cid))
        setup.append(c.event("customer.segment.tier_changed.v1", customer_id=cid, dimension="value", to=tier))
        setup.append(
            c.event(
                "customer.profile.consent_changed.v1",
                customer_id=cid,
                channel="outbound_call",
                purpose="marketing",
                granted=True,
                do_not_disturb={"enabled": False, "until": None},
            )
        )
    setup.append(scored(c, "C3", "high", -60))
    await c.send(*setup)

    body = {
        "name": "高危高价值挽留",
        "objective": "retention",
        "channels": ["outbound_call"],
        "trigger": {"churn_band": "high", "value_tiers": ["high"]},
        "offers": [RETAIN],
        "holdout_share": "0",
        "starts_at": c.clock.now.isoformat(),
        "ends_at": (c.clock.now + timedelta(days=90)).isoformat(),
    }
    r = await c.http.post(CAMPAIGNS, json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["trigger"] == {"churn_band": "high", "value_tiers": ["high"]}
    for step in ("schedule", "launch"):
        r = await c.http.post(f"{CAMPAIGNS}/{cid}/{step}")
        assert r.status_code == 200, r.text
    assert (r.json()["treatment"], r.json()["control"]) == (0, 0), "a triggered campaign starts empty"
    empty = (await c.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()
    assert empty == {"sent": 0, "deferred": 0, "suppressed": {}}, "nobody to contact yet: the campaign settles"

    await c.send(scored(c, "C1", "high", 1), scored(c, "C2", "high", 1), scored(c, "C3", "high", 1))
    assert await assigned(c, cid) == {"C1": "treatment"}, "C2 is low value; C3 was already high before"

    dispatched = (await c.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()
    assert dispatched == {"sent": 1, "deferred": 0, "suppressed": {}}
    assert (await c.http.get(f"{CAMPAIGNS}/{cid}/contacts")).json()["sent"] == {"outbound_call": 1}

    await c.send(scored(c, "C3", "medium", 2), scored(c, "C3", "high", 3))
    assert await assigned(c, cid) == {"C1": "treatment", "C3": "treatment"}, "C3 moved back into high"
    later = (await c.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()
    assert later == {"sent": 1, "deferred": 0, "suppressed": {}}, "a customer who joined unsettles the campaign"


async def test_a_trigger_names_a_band_and_tiers_that_exist(campaign: Campaigns) -> None:
    body = {
        "name": "坏触发",
        "objective": "retention",
        "channels": ["sms"],
        "trigger": {"churn_band": "extreme"},
        "starts_at": campaign.clock.now.isoformat(),
        "ends_at": (campaign.clock.now + timedelta(days=1)).isoformat(),
    }
    assert_problem(await campaign.http.post(CAMPAIGNS, json=body), 422, "trigger.churn_band")
    body["trigger"] = {"churn_band": "high", "value_tiers": ["gold"]}
    assert_problem(await campaign.http.post(CAMPAIGNS, json=body), 422, "trigger.value_tiers[0]")
