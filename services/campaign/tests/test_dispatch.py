"""Dispatch through the API and the bus: every treatment customer gets one contact row — sent on the first channel
the contact policy allows (and published on campaign.contact), deferred past quiet hours, or suppressed with the
reason — once, however often dispatch runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from crm_campaign.domain import dispatch
from crm_campaign.domain.policy import PolicySettings
from crm_campaign.models import Assignment, Campaign, Contact, OutboundMessage
from crm_kit.db import Database, utcnow
from crm_kit.events import CloudEvent
from crm_kit.presentation import SHANGHAI
from crm_kit.testing import assert_problem, read_topic

from .conftest import Campaigns

CAMPAIGNS = "/campaign/v1/campaigns"
OFFER = {
    "code": "PACK-10G",
    "name": "10GB 流量包 5折",
    "kind": "data_pack",
    "cost_fen": 500,
    "expected_value_fen": 1500,
}


def consent(c: Campaigns, cid: str, channel: str, granted: bool = True) -> CloudEvent:
    return c.event(
        "customer.profile.consent_changed.v1",
        customer_id=cid,
        channel=channel,
        purpose="marketing",
        granted=granted,
        do_not_disturb={"enabled": False, "until": None},
    )


async def people(c: Campaigns) -> None:
    """C1 and C5 consent to calls and texts, C2 to nothing, C3 to texts but is on do-not-disturb, C4 consents but
    has an open complaint; all in segment SEG-X."""
    events = []
    for n in range(1, 6):
        cid = f"C{n}"
        events.append(c.event("customer.profile.created.v1", customer_id=cid))
        events.append(
            c.event("customer.segment.membership_changed.v1", customer_id=cid, segment_id="SEG-X", change="joined")
        )
    events += [consent(c, cid, ch) for cid in ("C1", "C4", "C5") for ch in ("outbound_call", "sms")]
    events.append(consent(c, "C3", "sms"))
    events.append(
        c.event(
            "customer.profile.dnd_changed.v1",
            customer_id="C3",
            enabled=True,
            until="2027-06-30T00:00:00+08:00",
            recorded_at="2026-11-20T10:00:00+08:00",
        )
    )
    events.append(c.event("ticketing.ticket.created.v1", customer_id="C4", ticket_id="TT-C4"))
    await c.send(*events)


async def running(c: Campaigns, name: str, **changes: Any) -> str:
    """A campaign on SEG-X with no control group, launched at the clock's now."""
    body = {
        "name": name,
        "objective": "upsell",
        "channels": ["outbound_call", "sms"],
        "audience": {"segments": ["SEG-X"]},
        "offers": [OFFER],
        "holdout_share": "0",
        "starts_at": c.clock.now.isoformat(),
        "ends_at": (c.clock.now + timedelta(days=14)).isoformat(),
        **changes,
    }
    r = await c.http.post(CAMPAIGNS, json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for step in ("schedule", "launch"):
        r = await c.http.post(f"{CAMPAIGNS}/{cid}/{step}")
        assert r.status_code == 200, r.text
    return cid  # type: ignore[no-any-return]


async def contacts(c: Campaigns, campaign_id: str) -> dict[str, tuple[str, str | None, str | None]]:
    db = Database(c.database_url)
    try:
        async with db.sessions() as session:
            rows = await session.scalars(select(Contact).where(Contact.campaign_id == campaign_id))
            return {r.customer_id: (r.status, r.channel, r.reason) for r in rows}
    finally:
        await db.dispose()


async def test_each_customer_gets_the_first_channel_the_policy_allows_once(campaign: Campaigns) -> None:
    await people(campaign)
    campaign.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    cid = await running(campaign, "升档 A")

    r = await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sent": 2,
        "deferred": 0,
        "suppressed": {"no_consent": 1, "do_not_disturb": 1, "open_complaint": 1},
    }
    assert await contacts(campaign, cid) == {
        "C1": ("sent", "outbound_call", None),
        "C2": ("suppressed", "outbound_call", "no_consent"),
        "C3": ("suppressed", "sms", "do_not_disturb"),
        "C4": ("suppressed", "outbound_call", "open_complaint"),
        "C5": ("sent", "outbound_call", None),
    }, "the reason reported is the one that got furthest: C3 was asked about texts, and said do not disturb"

    again = await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")
    assert again.json() == {"sent": 0, "deferred": 0, "suppressed": {}}, "a second run sends nobody twice"

    published = await read_topic(campaign.bootstrap, "campaign.contact", expect=2)
    events = [CloudEvent.model_validate_json(rec.value or b"") for rec in published]
    for event in events:
        campaign.contracts.validate_event(event)
    assert sorted((e.subject, e.data["channel"], e.data["offer_code"]) for e in events) == [
        ("C1", "outbound_call", "PACK-10G"),
        ("C5", "outbound_call", "PACK-10G"),
    ]
    summary = (await campaign.http.get(f"{CAMPAIGNS}/{cid}/contacts")).json()
    assert summary == {
        "sent": {"outbound_call": 2},
        "deferred": 0,
        "suppressed": {"no_consent": 1, "do_not_disturb": 1, "open_complaint": 1},
    }


async def test_quiet_hours_defer_a_text_to_the_morning(campaign: Campaigns) -> None:
    await people(campaign)
    campaign.clock.now = datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI).astimezone(UTC)
    cid = await running(campaign, "夜间短信", channels=["sms"])

    r = await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")
    assert (r.json()["sent"], r.json()["deferred"]) == (0, 2)
    db = Database(campaign.database_url)
    try:
        async with db.sessions() as session:
            deferred = list(await session.scalars(select(Contact).where(Contact.status == "deferred")))
    finally:
        await db.dispose()
    assert {c.customer_id for c in deferred} == {"C1", "C5"}
    assert {c.not_before for c in deferred} == {datetime(2026, 11, 24, 8, tzinfo=SHANGHAI).astimezone(UTC)}

    campaign.clock.now = datetime(2026, 11, 24, 7, 59, tzinfo=SHANGHAI).astimezone(UTC)
    assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()["sent"] == 0
    campaign.clock.now = datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)
    morning = await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")
    assert (morning.json()["sent"], morning.json()["deferred"]) == (2, 0)

    db = Database(campaign.database_url)
    try:
        async with db.sessions() as session:
            outbound = list(await session.scalars(select(OutboundMessage).order_by(OutboundMessage.customer_id)))
    finally:
        await db.dispose()
    assert [(m.customer_id, m.channel, m.offer_code) for m in outbound] == [
        ("C1", "sms", "PACK-10G"),
        ("C5", "sms", "PACK-10G"),
    ]
    assert "10GB 流量包" in outbound[0].text


async def test_the_weekly_cap_counts_every_campaign_and_priority_decides_overlaps(campaign: Campaigns) -> None:
    await people(campaign)
    campaign.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    for name in ("第一周 A", "第一周 B"):
        cid = await running(campaign, name)
        assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()["sent"] == 2
        assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/complete")).status_code == 200
        campaign.clock.now += timedelta(days=1)

    third = await running(campaign, "第一周 C")
    capped = (await campaign.http.post(f"{CAMPAIGNS}/{third}/dispatch")).json()
    assert (capped["sent"], capped["suppressed"].get("frequency_cap")) == (0, 2)
    assert (await campaign.http.post(f"{CAMPAIGNS}/{third}/complete")).status_code == 200

    campaign.clock.now += timedelta(days=7)
    high = await running(campaign, "高优先", priority=90)
    low = await running(campaign, "低优先", priority=10)
    outranked = (await campaign.http.post(f"{CAMPAIGNS}/{low}/dispatch")).json()
    assert (outranked["sent"], outranked["suppressed"].get("outranked")) == (0, 5)
    assert (await campaign.http.post(f"{CAMPAIGNS}/{high}/dispatch")).json()["sent"] == 2


async def test_the_store_offers_at_the_counter_at_any_hour_and_outside_the_cap(campaign: Campaigns) -> None:
    """厅店推荐: C2 (never asked) and C3 (do-not-disturb) are offered at the counter too; C4's open complaint still
    keeps marketing away. Late at night, after two texts this week, the store's offers go at once, and they do not
    count against the cap of a text campaign the next morning."""
    await people(campaign)
    campaign.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    for name in ("短信一", "短信二"):
        cid = await running(campaign, name, channels=["sms"])
        assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()["sent"] == 2
        assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/complete")).status_code == 200

    campaign.clock.now = datetime(2026, 11, 23, 23, tzinfo=SHANGHAI).astimezone(UTC)
    store = await running(campaign, "厅店推荐", channels=["store"])
    r = await campaign.http.post(f"{CAMPAIGNS}/{store}/dispatch")
    assert r.json() == {"sent": 4, "deferred": 0, "suppressed": {"open_complaint": 1}}
    assert {who: channel for who, (_, channel, _) in (await contacts(campaign, store)).items()} == dict.fromkeys(
        ("C1", "C2", "C3", "C4", "C5"), "store"
    )
    assert (await campaign.http.post(f"{CAMPAIGNS}/{store}/complete")).status_code == 200

    campaign.clock.now = datetime(2026, 11, 25, 10, tzinfo=SHANGHAI).astimezone(UTC)
    third = await running(campaign, "短信三", channels=["sms"])
    capped = (await campaign.http.post(f"{CAMPAIGNS}/{third}/dispatch")).json()
    assert (capped["sent"], capped["suppressed"].get("frequency_cap")) == (0, 2), "two texts, the store not counted"


async def test_only_a_running_campaign_dispatches(campaign: Campaigns) -> None:
    r = await campaign.http.post(
        CAMPAIGNS,
        json={
            "name": "草稿",
            "objective": "upsell",
            "channels": ["sms"],
            "starts_at": campaign.clock.now.isoformat(),
            "ends_at": (campaign.clock.now + timedelta(days=1)).isoformat(),
        },
    )
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{r.json()['id']}/dispatch"), 409, "status")
    assert_problem(await campaign.http.post(f"{CAMPAIGNS}/CMP-NONE/dispatch"), 404, "campaign_id")


async def test_a_run_in_small_batches_defers_at_night_and_sends_each_in_the_morning_once(campaign: Campaigns) -> None:
    """Batches walk the treatment group past the last customer judged (as another replica would run it, on the same
    database): the night defers every text, the morning picks the deferred ones up batch by batch, once each."""
    events = []
    for n in range(1, 24):
        cid = f"B{n:02d}"
        events.append(campaign.event("customer.profile.created.v1", customer_id=cid))
        events.append(
            campaign.event(
                "customer.segment.membership_changed.v1", customer_id=cid, segment_id="SEG-X", change="joined"
            )
        )
        if n % 5:
            events.append(consent(campaign, cid, "sms"))
    await campaign.send(*events)
    night = datetime(2026, 11, 23, 22, 30, tzinfo=SHANGHAI).astimezone(UTC)
    campaign.clock.now = night
    cid = await running(campaign, "分批夜间短信", channels=["sms"])
    consenting = {f"B{n:02d}" for n in range(1, 24) if n % 5}

    db = Database(campaign.database_url)
    adapter = dispatch.OutboxChannel(campaign.contracts)
    try:
        first = await dispatch.dispatch(db, cid, adapter, PolicySettings(), night, batch_size=4)
        assert (first.sent, first.deferred, first.suppressed) == (0, len(consenting), {"no_consent": 4})
        morning = night + timedelta(hours=10)
        second = await dispatch.dispatch(db, cid, adapter, PolicySettings(), morning, batch_size=4)
        assert (second.sent, second.deferred, second.suppressed) == (len(consenting), 0, {})
        third = await dispatch.dispatch(db, cid, adapter, PolicySettings(), morning, batch_size=4)
        assert (third.sent, third.deferred, third.suppressed) == (0, 0, {})
        async with db.sessions() as session:
            sent_to = list(
                await session.scalars(select(OutboundMessage.customer_id).where(OutboundMessage.campaign_id == cid))
            )
    finally:
        await db.dispose()
    assert sorted(sent_to) == sorted(consenting), "each consenting customer texted once"
    found = await contacts(campaign, cid)
    assert {k for k, (status, _, _) in found.items() if status == "sent"} == consenting
    assert len(found) == 23


async def test_one_run_dispatches_a_campaign_at_a_time(campaign: Campaigns) -> None:
    """While a run (another replica's, the calendar's) holds the campaign's lease, "dispatch now" is refused and the
    calendar leaves it alone; a lease its holder stopped renewing is free again; a finished run gives it back."""
    await people(campaign)
    campaign.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    cid = await running(campaign, "租约")
    db = Database(campaign.database_url)
    adapter = dispatch.OutboxChannel(campaign.contracts)
    try:
        held = utcnow() + timedelta(seconds=30)
        assert await dispatch._lease(db, cid, "another-run", held, take=True)
        assert_problem(await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch"), 409)
        await dispatch.run_due(db, adapter, PolicySettings(), campaign.clock.now)
        assert await contacts(campaign, cid) == {}, "the calendar left it to the run holding it"

        assert await dispatch._lease(db, cid, "another-run", utcnow() - timedelta(seconds=1))  # it stalled
        r = await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")
        assert (r.status_code, r.json()["sent"]) == (200, 2), r.text
        async with db.sessions() as session:
            ended = await session.get(Campaign, cid)
            assert ended is not None and (ended.dispatch_lease, ended.dispatch_lease_until) == (None, None)
        assert not await dispatch._lease(db, cid, "another-run", None), "its old holder no longer holds it"
    finally:
        await db.dispose()


async def test_a_campaign_whose_customers_all_have_a_final_contact_is_passed_by_until_one_joins(
    campaign: Campaigns,
) -> None:
    """A million-customer campaign dispatched to the end is not walked again every tick: it is settled. A customer
    slipped into its treatment group without a trigger saying so stays unreached; once a trigger stamps a joining
    (as `triggers.on_churn_band` does), the next dispatch walks again and reaches them."""
    await people(campaign)
    await campaign.send(
        campaign.event("customer.profile.created.v1", customer_id="C9"),
        consent(campaign, "C9", "outbound_call"),
    )
    campaign.clock.now = datetime(2026, 11, 23, 10, tzinfo=SHANGHAI).astimezone(UTC)
    cid = await running(campaign, "结清")
    assert (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()["sent"] == 2
    db = Database(campaign.database_url)
    try:
        async with db.sessions.begin() as session:
            settled = await session.get(Campaign, cid)
            assert settled is not None and settled.settled_at is not None, "nobody deferred, nobody left"
            session.add(Assignment(campaign_id=cid, customer_id="C9", group="treatment", assigned_at=utcnow()))
        passed_by = (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()
        assert passed_by == {"sent": 0, "deferred": 0, "suppressed": {}}, "a settled campaign is not walked"

        async with db.sessions.begin() as session:
            joined = await session.get(Campaign, cid)
            assert joined is not None
            joined.treatment_joined_at = utcnow()
        again = (await campaign.http.post(f"{CAMPAIGNS}/{cid}/dispatch")).json()
        assert again == {"sent": 1, "deferred": 0, "suppressed": {}}, "C9 joined: walked again, reached"
    finally:
        await db.dispose()
