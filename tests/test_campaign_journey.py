"""Issue 7 end to end, through the gateway: a simulated province (the BOSS simulator's population, pushed through the
billing adapter into the customer service), its churn scores as the churn service publishes them, a marketer's
segment, and a retention campaign (维系活动) launched on it — contacts sent under every rule of the contact policy
(consent, do-not-disturb, open complaints, quiet hours, the weekly cap, a campaign of higher priority), the simulated
market's answers arriving as BOSS plan changes, and a report whose uplift finds the effect the simulator put in.

The campaign runs in the journey's time (the service's clock), just after the simulated months end."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from crm_campaign.domain import control
from crm_kit.presentation import SHANGHAI
from crm_kit.simulator import (
    OfferEffect,
    Population,
    Simulation,
    churn_score_events,
    eligible_for_offer,
    offer_responses,
)
from crm_kit.testing import assert_problem, bearer, boss_push, eventually, publish, read_topic

CAMPAIGNS = "/campaign/v1/campaigns"
DELIVERIES = "/campaign/v1/deliveries"
SEGMENTS = "/api/v1/segments"
MARKETER = bearer("mkt-01", roles=("marketer",))
ANALYST = bearer("ana-01", roles=("analyst",))
SMS_PLATFORM = bearer("sms-platform", roles=("channel",))

POPULATION = Population(customers=2000, seed=2026, start=datetime(2026, 6, 1, tzinfo=UTC), months=4)
END = datetime(2026, 10, 1, tzinfo=SHANGHAI)
"""The simulated months end here; the churn model scores the base the night after."""
EFFECT = OfferEffect(plan_code="5G-ULT-199", base_rate=0.05, lift=0.35, window_days=30, seed=7)
UPGRADE = {
    "code": "KEEP-199",
    "name": "5G畅享199 维系升档礼",
    "kind": "plan_upgrade",
    "cost_fen": 3_000,
    "expected_value_fen": 12_000,
    "plan_code": EFFECT.plan_code,
}
DATA_PACK = {
    "code": "PACK-10G",
    "name": "10GB流量包",
    "kind": "data_pack",
    "cost_fen": 500,
    "expected_value_fen": 2_000,
}
HOLDOUT_KEY = "JOURNEY-RETENTION-2026"
CAPPED_REGION = "GD-FS"
"""Sent two marketing contacts in the week before the retention campaign's: its weekly cap holds them back."""
OUTRANKED_REGION = "GD-HZ"
"""Held by a running campaign of higher priority."""


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


def number(customer_id: str) -> int:
    return int(customer_id.removeprefix("CUST"))


def consent_of(customer_id: str) -> str:
    """How the customer answered about marketing texts: by their number, so each answer is common enough."""
    return {1: "refused", 2: "never_asked", 3: "do_not_disturb"}.get(number(customer_id) % 10, "granted")


# --- following events by the services' own counters --------------------------------------------------------------


SERIES = re.compile(r"^crm_(\w+?)_(outbox_published_total|events_consumed_total|dlq_total|outbox_backlog)$")


class Flows:
    """Whether events have gone where they go, from the services' counters counted from the journey's start: what a
    producer's outbox published, what a consumer took (applied, passed over or dead-lettered)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base: Counter[tuple[str, str, str]] = Counter()

    async def read(self) -> Counter[tuple[str, str, str]]:
        async with httpx.AsyncClient() as http:
            text = (await http.get(self.url)).text
        values: Counter[tuple[str, str, str]] = Counter()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                match = SERIES.match(sample.name)
                if match is None:
                    continue
                service, series = match.groups()
                kind = {"outbox_published_total": "published", "outbox_backlog": "backlog"}.get(series, "taken")
                values[(service, kind, sample.labels.get("topic", ""))] += sample.value
        return values

    async def start(self) -> None:
        self.base = await self.read()

    def since_start(self, values: Counter[tuple[str, str, str]], service: str, kind: str, topic: str) -> float:
        return values[(service, kind, topic)] - self.base[(service, kind, topic)]

    async def settled(
        self,
        flows: Iterable[tuple[str, str, str]],
        direct: Mapping[tuple[str, str], int] | None = None,
        timeout: float = 540,
    ) -> None:
        """Every (producer, topic, consumer) flow has arrived, and every (consumer, topic) has taken the number of
        events the journey put on it itself; twice in a row, the producers' outboxes empty.

        The timeout is a wait, not a speed goal: five services share this one event loop, and on a busy machine the
        province's ~20,000 events have taken the customer service from two to over four minutes."""
        flows = list(flows)

        async def behind() -> dict[str, float]:
            values = await self.read()
            late = {}
            for producer, topic, consumer in flows:
                sent = self.since_start(values, producer, "published", topic)
                taken = self.since_start(values, consumer, "taken", topic)
                if taken < sent or values[(producer, "backlog", "")] > 0:
                    late[f"{producer}→{topic}→{consumer}"] = sent - taken
            for (consumer, topic), sent in (direct or {}).items():
                taken = self.since_start(values, consumer, "taken", topic)
                if taken < sent:
                    late[f"{topic}→{consumer}"] = sent - taken
            return late

        late: dict[str, float] = {}

        async def twice() -> bool:
            nonlocal late
            late = await behind()
            if not late:
                await asyncio.sleep(1.5)
                late = await behind()
            return not late

        try:
            await eventually(twice, timeout=timeout, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"events still on their way after {timeout}s: {late}") from exc


def billing_flows(consumers: Sequence[str]) -> list[tuple[str, str, str]]:
    topics = {"customer": BILLING_TOPICS, "campaign": ("billing.subscription", "billing.payment")}
    return [("billing_adapter", topic, consumer) for consumer in consumers for topic in topics[consumer]]


BILLING_TOPICS = ("billing.subscription", "billing.invoice", "billing.payment", "billing.account")
CUSTOMER_TOPICS = ("customer.profile", "customer.segment")


# --- the journey ---------------------------------------------------------------------------------------------------


async def push(gateway: httpx.AsyncClient, records: Sequence[dict[str, Any]]) -> int:
    """The BOSS's pushes, 5000 records each, one after another (a customer's records stay in order)."""
    accepted = 0
    for start in range(0, len(records), 5000):
        r = await boss_push(gateway, list(records[start : start + 5000]))
        assert r.status_code == 202, r.text
        accepted += r.json()["accepted"]
    return accepted


async def publish_events(bootstrap: str, events: Sequence[dict[str, Any]]) -> None:
    """CloudEvents (as dicts) onto their topics keyed by subject, as their producers' relays would."""
    by_topic: dict[str, list[tuple[str, bytes]]] = {}
    for e in events:
        topic = ".".join(e["type"].split(".")[:2])
        by_topic.setdefault(topic, []).append((e["subject"], json.dumps(e, ensure_ascii=False).encode()))
    for topic, records in by_topic.items():
        await publish(bootstrap, topic, records)


async def segment_members(gateway: httpx.AsyncClient, segment_id: str) -> set[str]:
    members: set[str] = set()
    while True:
        r = await gateway.get(
            f"{SEGMENTS}/{segment_id}/members", params={"offset": len(members), "limit": 1000}, headers=MARKETER
        )
        assert r.status_code == 200, r.text
        page = [m["customer_id"] for m in r.json()]
        members.update(page)
        if len(members) >= int(r.headers["X-Total-Count"]) or not page:
            return members


async def record_consents(gateway: httpx.AsyncClient, customers: Iterable[str]) -> None:
    """What each customer told the operator about marketing texts (营销短信授权), and who asked for no marketing."""
    gate = asyncio.Semaphore(8)

    async def one(cid: str) -> None:
        answer = consent_of(cid)
        if answer == "never_asked":
            return
        async with gate:
            base = f"/api/v1/customers/{cid}"
            granted = answer != "refused"
            r = await gateway.put(f"{base}/consents/sms/marketing", json={"granted": granted, "source": "store"})
            assert r.status_code == 200, r.text
            if answer == "do_not_disturb":
                r = await gateway.put(
                    f"{base}/do-not-disturb",
                    json={"enabled": True, "until": "2027-06-30T00:00:00+08:00", "source": "hotline"},
                )
                assert r.status_code == 200, r.text

    await asyncio.gather(*(one(cid) for cid in sorted(customers)))


async def campaign_action(system: Any, campaign_id: str, action: str, at: datetime, **body: Any) -> dict[str, Any]:
    system.campaign_clock.at = at
    r = await system.gateway.post(f"{CAMPAIGNS}/{campaign_id}/{action}", json=body or None, headers=MARKETER)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def create(system: Any, at: datetime, **campaign: Any) -> str:
    system.campaign_clock.at = at
    r = await system.gateway.post(CAMPAIGNS, json=campaign, headers=MARKETER)
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


async def run_wave(system: Any, name: str, objective: str, segment: str, starts: datetime, sent_at: datetime) -> int:
    """An earlier marketing campaign on one region of the segment, run and completed: its texts count against the
    weekly cap. How many it sent."""
    campaign_id = await create(
        system,
        starts - timedelta(hours=1),
        name=name,
        objective=objective,
        channels=["sms"],
        audience={"segments": [segment], "rule": {"field": "region", "op": "eq", "value": CAPPED_REGION}},
        offers=[DATA_PACK],
        holdout_share="0",
        starts_at=starts.isoformat(),
        ends_at=(starts + timedelta(days=2)).isoformat(),
    )
    await campaign_action(system, campaign_id, "schedule", starts - timedelta(hours=1))
    await campaign_action(system, campaign_id, "launch", sent_at)
    done = await campaign_action(system, campaign_id, "dispatch", sent_at)
    assert done["sent"] > 0, done
    await campaign_action(system, campaign_id, "complete", sent_at + timedelta(hours=8))
    return int(done["sent"])


@pytest.mark.timeout(900)
async def test_a_retention_campaign_on_a_simulated_province_finds_the_effect_the_simulator_put_in(system, kafka):
    gateway = system.gateway
    flows = Flows(system.metrics_url)
    await flows.start()
    sim = Simulation(POPULATION, usage=False)
    records = list(sim)
    regions = {
        r["data"]["customer_id"]: r["data"]["customer"]["region"]
        for r in records
        if r["event_type"] == "subscription.activated" and "customer" in r["data"]
    }

    async with system.customer_service():
        await eventually(lambda: _ready(gateway), timeout=30)

        # 1. The BOSS's months, the tickets raised meanwhile, and the churn model's scores of the base the night after
        accepted = await push(gateway, records)
        assert accepted == len(records)
        scores = churn_score_events(sim, END + timedelta(hours=2), high_share=0.15, medium_share=0.25)
        await publish_events(kafka.bootstrap, sim.tickets)
        await publish_events(kafka.bootstrap, scores)
        await flows.settled(
            billing_flows(["customer", "campaign"]),
            {("customer", "ticketing.ticket"): len(sim.tickets), ("customer", "churn.score"): len(scores)},
        )
        band = {e["data"]["customer_id"]: e["data"]["risk_band"] for e in scores}

        # 2. A marketer's segment of the base: individuals with a line in service (个人在网客户)
        rule = {
            "all": [
                {"field": "customer_type", "op": "eq", "value": "individual"},
                {"field": "active_lines", "op": "gte", "value": 1},
            ]
        }
        r = await gateway.post(SEGMENTS, json={"name": "个人在网客户", "rule": rule}, headers=MARKETER)
        assert r.status_code == 201, r.text
        segment = r.json()["id"]
        members = await segment_members(gateway, segment)
        assert len(members) > POPULATION.customers // 2
        candidates = {cid for cid in members if band.get(cid) in ("high", "medium")}
        await record_consents(gateway, candidates | {cid for cid in members if regions[cid] == CAPPED_REGION})
        await flows.settled(
            [("customer", topic, "campaign") for topic in CUSTOMER_TOPICS],
            {("campaign", "ticketing.ticket"): len(sim.tickets), ("campaign", "churn.score"): len(scores)},
        )

    # 3. Two marketing waves the week before hit one region (the weekly cap), and a campaign of higher priority
    # holds another while the retention campaign runs
    waves = await run_wave(system, "9月流量包", "cross_sell", segment, local(2026, 9, 27), local(2026, 9, 28, 10))
    waves += await run_wave(system, "国庆流量包", "upsell", segment, local(2026, 10, 1), local(2026, 10, 1, 10))
    priority = await create(
        system,
        local(2026, 10, 1, 18),
        name="金秋升档",
        objective="upsell",
        channels=["sms"],
        audience={"segments": [segment], "rule": {"field": "region", "op": "eq", "value": OUTRANKED_REGION}},
        offers=[UPGRADE],
        holdout_share="0",
        priority=90,
        starts_at=local(2026, 10, 2).isoformat(),
        ends_at=local(2026, 10, 20).isoformat(),
    )
    await campaign_action(system, priority, "schedule", local(2026, 10, 1, 18))
    held = await campaign_action(system, priority, "launch", local(2026, 10, 2, 8))
    outranked = {cid for cid in members if regions[cid] == OUTRANKED_REGION}
    assert held["treatment"] == len(outranked)

    # 4. The retention campaign on the segment's customers at high or medium churn risk, half held out
    retention = {
        "name": "10月高危客户维系",
        "objective": "retention",
        "channels": ["sms"],
        "audience": {"segments": [segment], "rule": {"field": "churn_band", "op": "in", "value": ["high", "medium"]}},
        "offers": [UPGRADE],
        "holdout_share": "0.5",
        "holdout_key": HOLDOUT_KEY,
        "response_window_days": EFFECT.window_days,
        "starts_at": local(2026, 10, 2).isoformat(),
        "ends_at": local(2026, 10, 31).isoformat(),
    }
    campaign_id = await create(system, local(2026, 10, 2, 9), **retention)
    preview = (await gateway.post(f"{CAMPAIGNS}/{campaign_id}/audience/preview", headers=MARKETER)).json()
    treatment, held_out = control.assign(HOLDOUT_KEY, sorted(candidates), Decimal("0.5"))
    assert (preview["count"], preview["treatment"], preview["control"]) == (
        len(candidates),
        len(treatment),
        len(held_out),
    )

    # bad input is refused by name: a rule on a field the service does not keep, a rival of the same priority on
    # the same segment in the same weeks, a campaign with nobody to aim at
    unknown = {
        **retention,
        "name": "x",
        "audience": {"segments": [segment], "rule": {"field": "shoe_size", "op": "eq", "value": 42}},
    }
    assert_problem(await gateway.post(CAMPAIGNS, json=unknown, headers=MARKETER), 422, "audience.rule.field")
    await campaign_action(system, campaign_id, "schedule", local(2026, 10, 2, 9))
    rival = await create(system, local(2026, 10, 2, 9), **{**retention, "name": "10月维系（重复）"})
    assert_problem(await gateway.post(f"{CAMPAIGNS}/{rival}/schedule", headers=MARKETER), 409, "priority")
    nobody = await create(system, local(2026, 10, 2, 9), **{**retention, "name": "无客群", "audience": None})
    assert_problem(await gateway.post(f"{CAMPAIGNS}/{nobody}/schedule", headers=MARKETER), 422, "audience")
    assert_problem(await gateway.post(f"{CAMPAIGNS}/{nobody}/launch", headers=MARKETER), 409, "status")

    # 5. Launched at 22:30: every text waits out the night (quiet hours); the lasting refusals are final at once
    launched = await campaign_action(system, campaign_id, "launch", local(2026, 10, 2, 22, 30))
    assert (launched["treatment"], launched["control"]) == (len(treatment), len(held_out))
    complaining = {
        cid
        for cid, truth in sim.truth.items()
        if any(c.ticket_type == "complaint" and c.open_at(END) for c in truth.complaints)
    }
    capped = {cid for cid in members if regions[cid] == CAPPED_REGION}
    reasons = {cid: expected_reason(cid, outranked, complaining, capped) for cid in treatment}
    night = await campaign_action(system, campaign_id, "dispatch", local(2026, 10, 2, 22, 30))
    lasting = Counter(r for r in reasons.values() if r not in (None, "frequency_cap"))
    assert night == {"sent": 0, "deferred": len(treatment) - sum(lasting.values()), "suppressed": dict(lasting)}

    # 6. At nine the next morning they go, but not to whoever already had two marketing texts this week
    morning = local(2026, 10, 3, 9)
    day = await campaign_action(system, campaign_id, "dispatch", morning)
    expected = Counter(reasons.values())
    assert day == {"sent": expected[None], "deferred": 0, "suppressed": {"frequency_cap": expected["frequency_cap"]}}
    again = await campaign_action(system, campaign_id, "dispatch", morning + timedelta(hours=1))
    assert again == {"sent": 0, "deferred": 0, "suppressed": {}}, "nobody is contacted twice"
    contacts = (await gateway.get(f"{CAMPAIGNS}/{campaign_id}/contacts", headers=ANALYST)).json()
    assert contacts == {
        "sent": {"sms": expected[None]},
        "deferred": 0,
        "suppressed": {reason: n for reason, n in expected.items() if reason is not None},
    }

    # every text that went is on campaign.contact, to a treated customer every rule allowed, in the morning
    on_topic = await read_topic(kafka.bootstrap, "campaign.contact", expect=waves + expected[None], timeout=30)
    sent = [json.loads(r.value) for r in on_topic]
    ours = [
        e["data"] for e in sent if e["type"] == "campaign.contact.sent.v1" and e["data"]["campaign_id"] == campaign_id
    ]
    contacted = {d["customer_id"]: datetime.fromisoformat(d["occurred_at"]) for d in ours}
    assert len(ours) == len(contacted) == expected[None]
    assert set(contacted) == {cid for cid, reason in reasons.items() if reason is None}
    assert all(at == morning for at in contacted.values())

    # the SMS platform reports back (状态报告): every twentieth number is out of service, the rest got their text
    receipts = [
        {"contact_id": d["contact_id"], "status": "delivered", "at": (morning + timedelta(seconds=5)).isoformat()}
        if n % 20
        else {"contact_id": d["contact_id"], "status": "failed", "at": morning.isoformat(), "error": "MK:0001 空号"}
        for n, d in enumerate(ours)
    ]
    failed = sum(1 for r in receipts if r["status"] == "failed")
    r = await gateway.post(DELIVERIES, json={"receipts": receipts}, headers=SMS_PLATFORM)
    assert (r.status_code, r.json()) == (200, {"recorded": len(receipts), "unchanged": 0}), r.text

    # 7. The market answers: some take the 199 plan on their own, the contacted more often; the BOSS tells
    responses = offer_responses(sim, EFFECT, contacted, local(2026, 10, 2, 22, 30))
    assert await push(gateway, responses) == len(responses)
    await flows.settled(billing_flows(["campaign"]))

    report = (await gateway.get(f"{CAMPAIGNS}/{campaign_id}/report", headers=ANALYST)).json()
    takers = {r["data"]["customer_id"] for r in responses}
    assert report["treatment"]["customers"] == len(treatment)
    assert report["control"]["customers"] == len(held_out)
    assert report["treatment"]["contacted"] == len(contacted)
    assert report["control"]["contacted"] == 0
    assert report["treatment"]["delivered"] == len(contacted) - failed
    assert report["treatment"]["responded"] == len(takers & set(treatment))
    assert report["control"]["responded"] == len(takers & set(held_out))
    assert report["cost_fen"] == report["treatment"]["responded"] * UPGRADE["cost_fen"]

    # the uplift the simulator put in, on the whole treatment group (intent to treat): the lift on those contacted
    # who could take the plan, diluted by the treated it never reached
    eligible = eligible_for_offer(sim, EFFECT.plan_code)
    truth = EFFECT.lift * len(set(contacted) & eligible) / len(treatment)
    uplift = report["response"]
    assert uplift["ci_low"] <= truth <= uplift["ci_high"], (truth, uplift)
    assert uplift["significant"] and uplift["p_value"] < 0.05, uplift
    assert uplift["ci_low"] > 0
    assert report["retention"] is not None

    page = await gateway.get(f"{CAMPAIGNS}/{campaign_id}/report.html", headers=ANALYST)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," in page.text

    taken = await flows.read()
    assert not [key for key, n in taken.items() if key[0] == "campaign" and "dlq" in key[1] and n]


def expected_reason(customer_id: str, outranked: set[str], complaining: set[str], capped: set[str]) -> str | None:
    """Why the policy holds the treated customer back, in its order of rules; None: the text goes. `capped`: the
    region the two waves texted, each customer of it that the rules before the cap let through."""
    if customer_id in outranked:
        return "outranked"
    answer = consent_of(customer_id)
    if answer == "refused":
        return "consent_withdrawn"
    if answer == "never_asked":
        return "no_consent"
    if answer == "do_not_disturb":
        return "do_not_disturb"
    if customer_id in complaining:
        return "open_complaint"
    if customer_id in capped:
        return "frequency_cap"
    return None


async def _ready(gateway: httpx.AsyncClient) -> bool:
    return (await gateway.get("/health/ready")).status_code == 200
