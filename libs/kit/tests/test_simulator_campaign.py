"""The simulated market a campaign meets: who still has a line at the end, the churn scores a perfect model would
publish for them, and plan offers (升档) taken up at a known base rate and lift that a campaign's uplift must find."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crm_kit.events import CloudEvent, Contracts, load_contracts, parse_rfc3339
from crm_kit.settings import find_contracts_dir
from crm_kit.simulator import (
    PLANS,
    OfferEffect,
    Population,
    Simulation,
    churn_score_events,
    eligible_for_offer,
    offer_responses,
)

SMALL = Population(customers=300, months=3, seed=21)
MARKET = Population(customers=3000, months=3, seed=8)
PREFIX = Population(customers=1000, months=3, seed=8)
OFFER = OfferEffect("5G-ULT-199", base_rate=0.05, lift=0.25)
PLAN_CHANGED = "billing.subscription.plan_changed.v1"
BANDS = {"high": 2, "medium": 1, "low": 0}


def _ran(population: Population) -> tuple[Simulation, list[dict[str, Any]]]:
    sim = Simulation(population, usage=False)
    return sim, list(sim)


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return load_contracts(find_contracts_dir())


@pytest.fixture(scope="module")
def small() -> tuple[Simulation, list[dict[str, Any]]]:
    return _ran(SMALL)


@pytest.fixture(scope="module")
def market() -> tuple[Simulation, list[dict[str, Any]]]:
    return _ran(MARKET)


@pytest.fixture(scope="module")
def campaign(market) -> dict[str, Any]:
    """Half the eligible contacted (chosen at random) over the window's first five days, a day after the end."""
    sim, _ = market
    eligible = eligible_for_offer(sim, OFFER.plan_code)
    since = sim.end + timedelta(days=1)
    rng = random.Random(99)
    chosen = rng.sample(sorted(eligible), len(eligible) // 2)
    contacted = {cid: since + timedelta(minutes=rng.randrange(5 * 24 * 60)) for cid in chosen}
    return {"eligible": eligible, "since": since, "contacted": contacted}


def _number(customer_id: str) -> int:
    return int(customer_id.removeprefix("CUST"))


# -- who is still here ---------------------------------------------------------------------------------------------


def test_open_lines_are_the_lines_the_records_leave_open(small):
    sim, stream = small
    activated: dict[str, dict[str, Any]] = {}
    plan: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    for r in stream:
        kind, data = r["event_type"], r["data"]
        if kind == "subscription.activated":
            activated[data["subscription_id"]] = data
            plan[data["subscription_id"]] = data["plan"]
        elif kind == "subscription.plan_changed":
            plan[data["subscription_id"]] = data["plan"]
        elif kind in ("subscription.terminated", "subscription.ported_out"):
            closed.add(data["subscription_id"])
    expected: dict[str, list[str]] = {}
    for sub in sorted(activated):  # SUB<n><line_no>: sorted is line order
        if sub not in closed:
            expected.setdefault(activated[sub]["customer_id"], []).append(sub)
    assert {cid: [line.subscription_id for line in lines] for cid, lines in sim.open_lines.items()} == expected
    for cid, lines in sim.open_lines.items():
        for line in lines:
            first = activated[line.subscription_id]
            assert (line.customer_id, line.account_id, line.msisdn) == (cid, first["account_id"], first["msisdn"])
            assert line.plan.wire() == plan[line.subscription_id]
            assert line.organisation == (first["customer"]["type"] == "organization")
    churned = {cid for cid, t in sim.truth.items() if t.churn_period}
    assert churned and churned.isdisjoint(sim.open_lines)
    assert set(sim.open_lines) | churned == set(sim.truth)


def test_the_helpers_want_a_simulation_run_to_its_end():
    sim = Simulation(SMALL, usage=False)
    next(iter(sim))
    with pytest.raises(RuntimeError):
        churn_score_events(sim, datetime(2026, 4, 1, tzinfo=UTC))
    with pytest.raises(RuntimeError):
        eligible_for_offer(sim, OFFER.plan_code)


# -- churn scores ----------------------------------------------------------------------------------------------------


def test_one_valid_score_per_customer_still_here_from_the_truths_hazard(small, contracts):
    sim, stream = small
    scored_at = sim.end + timedelta(hours=2)
    events = churn_score_events(sim, scored_at)
    assert [e["subject"] for e in events] == list(sim.open_lines)
    for e in events:
        contracts.validate_event(CloudEvent.model_validate(e))
        data = e["data"]
        assert e["source"] == "/crm/churn" and e["subject"] == data["customer_id"]
        assert e["time"] == data["occurred_at"] == data["scored_at"] == "2026-04-01T02:00:00+08:00"
        assert (data["model_kind"], data["model_version"], data["reasons"]) == ("churn", "sim-churn-1", [])
        months = sim.truth[e["subject"]].months
        hazard = months[-1].hazard if months else sim.last_hazard(e["subject"])
        assert data["score"] == f"{1 - (1 - hazard) ** 2:.4f}"
        if months:
            assert months[-1].period == "2026-03"
    assert len({e["id"] for e in events}) == len(events)
    # Only a joiner of the last month was never drawn against; its score comes from its drivers at the end.
    joined_last = {r["data"]["customer_id"] for r in stream if r["event_type"] == "subscription.activated"}
    joined_last = {c for c in joined_last if not sim.truth[c].months}
    assert joined_last and joined_last <= set(sim.open_lines)
    assert all(0 < sim.last_hazard(c) < 0.5 for c in joined_last)


@pytest.mark.parametrize(("high_share", "medium_share"), [(0.1, 0.2), (0.25, 0.25), (0.0, 1.0)])
def test_bands_go_by_rank_in_the_shares_asked(small, high_share, medium_share):
    sim, _ = small
    events = churn_score_events(sim, sim.end, high_share=high_share, medium_share=medium_share)
    n = len(events)
    bands = [e["data"]["risk_band"] for e in events]
    assert abs(bands.count("high") - high_share * n) <= 1
    assert abs(bands.count("medium") - medium_share * n) <= 1
    assert bands.count("low") + bands.count("medium") + bands.count("high") == n
    ranked = sorted(events, key=lambda e: (-Decimal(e["data"]["score"]), e["subject"]))
    order = [BANDS[e["data"]["risk_band"]] for e in ranked]
    assert order == sorted(order, reverse=True), "a higher score (or an equal one with a lower id) in a lower band"


def test_scores_are_the_same_for_the_same_run_and_ids_change_with_the_time(small):
    sim, _ = small
    at = sim.end + timedelta(hours=2)
    again, _ = _ran(SMALL)
    assert churn_score_events(again, at) == churn_score_events(sim, at)
    later = churn_score_events(sim, at + timedelta(days=1))
    assert {e["id"] for e in later}.isdisjoint(e["id"] for e in churn_score_events(sim, at))


def test_scores_refuse_bad_arguments(small):
    sim, _ = small
    with pytest.raises(ValueError, match="scored_at"):
        churn_score_events(sim, datetime(2026, 4, 1))
    with pytest.raises(ValueError, match="high_share"):
        churn_score_events(sim, sim.end, high_share=-0.1)
    with pytest.raises(ValueError, match="medium_share"):
        churn_score_events(sim, sim.end, high_share=0.6, medium_share=0.5)


# -- the offer -------------------------------------------------------------------------------------------------------


def test_eligible_are_those_with_an_open_postpaid_line_on_another_plan(market):
    sim, _ = market
    for plan in PLANS:
        if plan.prepaid:
            with pytest.raises(ValueError, match="plan_code"):
                eligible_for_offer(sim, plan.code)
            continue
        eligible = eligible_for_offer(sim, plan.code)
        for cid, lines in sim.open_lines.items():
            can = any(not line.plan.prepaid and line.plan.code != plan.code for line in lines)
            assert (cid in eligible) == can
        assert 0 < len(eligible) < len(sim.open_lines)
    organisations = {cid for cid, lines in sim.open_lines.items() if lines[0].organisation}
    assert organisations & eligible_for_offer(sim, OFFER.plan_code), "organisations are eligible too"


def test_take_up_is_base_rate_plus_lift_among_the_contacted_and_base_rate_among_the_rest(market, campaign):
    sim, _ = market
    records = offer_responses(sim, OFFER, campaign["contacted"], campaign["since"])
    takers = {r["data"]["customer_id"] for r in records}
    assert len(takers) == len(records), "a customer takes the offer twice"
    contacted = set(campaign["contacted"])
    rest = campaign["eligible"] - contacted
    assert len(contacted) > 800 and len(rest) > 800
    for group, p in ((contacted, OFFER.base_rate + OFFER.lift), (rest, OFFER.base_rate)):
        rate = len(takers & group) / len(group)
        se = math.sqrt(p * (1 - p) / len(group))
        assert abs(rate - p) <= 3 * se, f"{rate:.3f} took it, {p:.2f} ± {3 * se:.3f} expected"


def test_responses_are_valid_plan_changes_of_eligible_lines_in_the_window(market, campaign, contracts):
    sim, stream = market
    since, contacted = campaign["since"], campaign["contacted"]
    end = since + timedelta(days=OFFER.window_days)
    records = offer_responses(sim, OFFER, contacted, since)
    assert records
    organic = offer_responses(sim, OfferEffect(OFFER.plan_code, OFFER.base_rate, 0.0), contacted, since)
    on_their_own = {(r["data"]["customer_id"], r["data"]["occurred_at"]) for r in organic}
    taken = {(r["data"]["customer_id"], r["data"]["occurred_at"]) for r in records}
    assert on_their_own <= taken, "the lift changed who took it on their own"
    persuaded = {cid for cid, _ in taken - on_their_own}
    assert persuaded and persuaded <= set(contacted), "a customer not contacted was persuaded"
    plan = next(p for p in PLANS if p.code == OFFER.plan_code)
    times = []
    for r in records:
        data = r["data"]
        cid = data["customer_id"]
        assert r["event_type"] == "subscription.plan_changed"
        assert contracts.violations(PLAN_CHANGED, {**data, "boss_event_id": r["event_id"]}) == []
        assert cid in campaign["eligible"]
        line = next(x for x in sim.open_lines[cid] if not x.plan.prepaid and x.plan.code != OFFER.plan_code)
        assert (data["account_id"], data["subscription_id"], data["msisdn"]) == (
            line.account_id,
            line.subscription_id,
            line.msisdn,
        )
        assert data["from_plan_code"] == line.plan.code and data["plan"] == plan.wire()
        at = parse_rfc3339(data["occurred_at"])
        assert data["occurred_at"].endswith("+08:00")
        assert since <= at < end
        if (cid, data["occurred_at"]) not in on_their_own:
            assert at >= contacted[cid], f"{cid} took the offer before it was sent"
        assert re.fullmatch(rf"SIM-OFR-{_number(cid):07d}-[0-9a-f]{{8}}", r["event_id"])
        times.append(at)
    assert times == sorted(times)
    assert len({r["event_id"] for r in records}) == len(records)
    assert {r["event_id"] for r in records}.isdisjoint(r["event_id"] for r in stream)


def test_without_lift_a_contact_changes_nothing_and_the_extremes_are_exact(market, campaign):
    sim, _ = market
    since, contacted, eligible = campaign["since"], campaign["contacted"], campaign["eligible"]
    no_lift = OfferEffect(OFFER.plan_code, 0.05, 0.0)
    assert offer_responses(sim, no_lift, contacted, since) == offer_responses(sim, no_lift, {}, since)
    everyone = offer_responses(sim, OfferEffect(OFFER.plan_code, 1.0, 0.0), {}, since)
    assert {r["data"]["customer_id"] for r in everyone} == eligible
    persuaded = offer_responses(sim, OfferEffect(OFFER.plan_code, 0.0, 1.0), contacted, since)
    assert {r["data"]["customer_id"] for r in persuaded} == set(contacted)
    half = offer_responses(sim, OfferEffect(OFFER.plan_code, 0.5, 0.5), contacted, since)
    assert {r["data"]["customer_id"] for r in half} >= set(contacted), "base + lift = 1, yet a contacted one declined"


def test_a_customers_outcome_depends_neither_on_the_population_nor_the_order_of_contacts(market, campaign):
    sim, _ = market
    since, contacted = campaign["since"], campaign["contacted"]
    records = offer_responses(sim, OFFER, contacted, since)
    backwards = dict(reversed(list(contacted.items())))
    assert offer_responses(sim, OFFER, backwards, since) == records
    smaller, _ = _ran(PREFIX)
    assert eligible_for_offer(smaller, OFFER.plan_code) == {
        c for c in campaign["eligible"] if _number(c) <= PREFIX.customers
    }
    # The contacts of customers the smaller population does not have are ignored.
    assert offer_responses(smaller, OFFER, contacted, since) == [
        r for r in records if _number(r["data"]["customer_id"]) <= PREFIX.customers
    ]
    other = offer_responses(sim, OfferEffect(OFFER.plan_code, 0.05, 0.25, seed=8), contacted, since)
    assert {r["data"]["customer_id"] for r in other} != {r["data"]["customer_id"] for r in records}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"plan_code": "PRE-CARD-19"}, "plan_code"),
        ({"plan_code": "5G-NOPE-1"}, "plan_code"),
        ({"base_rate": -0.01}, "base_rate"),
        ({"base_rate": math.nan}, "base_rate"),
        ({"lift": -0.01}, "lift"),
        ({"base_rate": 0.8, "lift": 0.3}, r"base_rate \+ lift"),
        ({"window_days": 0}, "window_days"),
    ],
)
def test_bad_offer_effects_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        OfferEffect(**{"plan_code": "5G-ULT-199", "base_rate": 0.05, "lift": 0.25, **kwargs})


def test_offer_responses_refuse_naive_or_misplaced_times(market, campaign):
    sim, _ = market
    since = campaign["since"]
    cid = next(iter(campaign["contacted"]))
    with pytest.raises(ValueError, match="since"):
        offer_responses(sim, OFFER, {}, since.replace(tzinfo=None))
    with pytest.raises(ValueError, match="contacted"):
        offer_responses(sim, OFFER, {cid: (since + timedelta(hours=1)).replace(tzinfo=None)}, since)
    with pytest.raises(ValueError, match="outside the window"):
        offer_responses(sim, OFFER, {cid: since - timedelta(minutes=1)}, since)
    with pytest.raises(ValueError, match="outside the window"):
        offer_responses(sim, OFFER, {cid: since + timedelta(days=OFFER.window_days)}, since)
    with pytest.raises(ValueError, match="simulation's end"):
        offer_responses(sim, OFFER, {}, sim.end - timedelta(days=1))
