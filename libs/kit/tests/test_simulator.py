"""The BOSS simulator: a deterministic, contract-valid, time-ordered stream with a churn process a model can find,
the tickets its customers raise, and a pusher that signs, holds its rate, retries what may be retried and keeps
each customer's order."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typer.testing import CliRunner

from crm_kit.broker import free_port
from crm_kit.cli import cli
from crm_kit.events import CloudEvent, Contracts, parse_rfc3339
from crm_kit.presentation import SHANGHAI
from crm_kit.settings import find_contracts_dir
from crm_kit.signing import SIGNATURE_HEADER, SOURCE_HEADER, TIMESTAMP_HEADER, verify
from crm_kit.simulator import (
    PLANS,
    Batch,
    Plan,
    Population,
    PushRefused,
    RateLimiter,
    Simulation,
    churn_truth,
    ndjson_batches,
    push,
    records,
    retry_after_seconds,
    ticket_events,
)
from crm_kit.testing import serve

TROUBLE = {("payment.overdue", 1, None), ("subscription.suspended", None, "arrears")}
SMALL = Population(customers=400, months=4, seed=11)


@pytest.fixture(scope="module")
def small() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sim = Simulation(SMALL)
    return list(sim), sim.truth


def _auc(scores: list[float], labels: list[int]) -> float:
    """ROC-AUC as the chance a random positive outscores a random negative (ties count half)."""
    ranked = sorted(zip(scores, labels, strict=True))
    positives = sum(labels)
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(label for _, label in ranked[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * (len(labels) - positives))


# -- the stream ---------------------------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_records_and_a_smaller_population_is_a_prefix():
    population = Population(customers=40, months=3, seed=7)
    first = list(records(population))
    assert first == list(records(population))
    assert first != list(records(Population(customers=40, months=3, seed=8)))
    fewer = list(records(Population(customers=20, months=3, seed=7)))
    assert first[: len(fewer)] == fewer
    assert first[len(fewer)]["data"]["customer_id"] == "CUST0000021"


def test_every_billing_event_type_is_emitted_and_every_record_meets_its_contract(small):
    stream, _ = small
    contracts = Contracts.load(find_contracts_dir())
    billing = {t for t in contracts.event_types if t.startswith("billing.")}
    assert {f"billing.{r['event_type']}.v1" for r in stream} == billing
    for r in stream:
        assert (
            contracts.violations(f"billing.{r['event_type']}.v1", {**r["data"], "boss_event_id": r["event_id"]}) == []
        )
    assert len({r["event_id"] for r in stream}) == len(stream), "a BOSS event id is used twice"


def test_each_customers_records_come_together_and_in_time_order(small):
    stream, _ = small
    finished: set[str] = set()
    current, last = None, None
    for r in stream:
        customer, at = r["data"]["customer_id"], parse_rfc3339(r["data"]["occurred_at"])
        if customer != current:
            assert customer not in finished, f"{customer} comes back after another customer"
            if current:
                finished.add(current)
            current, last = customer, at
        assert at >= last, f"{r['event_id']} at {at} comes after an event of {last}"
        last = at


def test_usage_looks_like_a_subscribers(small):
    stream, _ = small
    usage = [r["data"] for r in stream if r["event_type"] == "usage.recorded"]
    monthly_gb = sum(u["data_mb"] for u in usage) / len(usage) * 30 / 1024
    monthly_minutes = sum(u["voice_minutes"] for u in usage) / len(usage) * 30
    assert 8 < monthly_gb < 40, monthly_gb  # a Chinese 4G/5G subscriber's DOU
    assert 100 < monthly_minutes < 600, monthly_minutes
    by_weekday: dict[bool, list[int]] = defaultdict(list)
    for u in usage:
        by_weekday[datetime.fromisoformat(u["usage_date"]).weekday() >= 5].append(u["voice_minutes"])
    assert sum(by_weekday[True]) / len(by_weekday[True]) < sum(by_weekday[False]) / len(by_weekday[False])
    roaming = [u for u in usage if u["roaming"]]
    assert roaming and all(u["roaming_data_mb"] <= u["data_mb"] for u in roaming)
    assert len(roaming) < len(usage) * 0.05


def test_a_bill_charges_what_the_lines_usage_charged(small):
    """Invoice items per line: overage and roaming equal the day charges of the line's usage in the period."""
    stream, _ = small
    charged: Counter[tuple[str, str]] = Counter()
    for r in stream:
        if r["event_type"] == "usage.recorded":
            charged[r["data"]["subscription_id"], r["data"]["usage_date"][:7]] += r["data"]["charged_fen"]
    invoices = [r["data"] for r in stream if r["event_type"] == "invoice.issued"]
    assert invoices
    for invoice in invoices:
        items = invoice["items"]
        assert invoice["amount_due_fen"] == max(sum(i["amount_fen"] for i in items), 0)
        assert datetime.fromisoformat(invoice["due_date"]).date() > parse_rfc3339(invoice["issued_at"]).date()
        billed: Counter[str] = Counter()
        for item in items:
            if item["code"] in ("DATA_OVERAGE", "VOICE_OVERAGE", "ROAMING"):
                billed[item["subscription_id"]] += item["amount_fen"]
        for sub, amount in billed.items():
            assert amount == charged[sub, invoice["billing_period"]], (invoice["invoice_id"], sub)


def test_the_truths_churners_leave_in_the_stream_and_are_not_heard_of_after(small):
    stream, truth = small
    left: dict[str, tuple[str, str]] = {}
    last_usage: dict[str, str] = {}
    for r in stream:
        kind, data = r["event_type"], r["data"]
        if kind in ("subscription.ported_out", "subscription.terminated"):
            reason = "arrears" if data.get("reason") == "arrears" else kind.split(".")[1]
            left.setdefault(data["customer_id"], (data["occurred_at"][:7], reason))
        elif kind == "usage.recorded":
            last_usage[data["customer_id"]] = data["usage_date"]
    churned = {c: (t.churn_period, t.churn_kind) for c, t in truth.items() if t.churn_period}
    assert churned
    for customer, (period, kind) in churned.items():
        assert left[customer][0] <= period, customer
        assert kind in ("ported_out", "terminated", "arrears")
        if customer in last_usage:
            assert last_usage[customer][:7] <= period
    ported = [r for r in stream if r["event_type"] == "subscription.ported_out"]
    assert {r["data"]["recipient_operator"] for r in ported} <= {"china_mobile", "china_unicom", "china_broadnet"}


def test_add_ons_are_ordered_as_subscribers_order_them(small):
    """Roaming packs on a day the line roamed, data packs once the month's data neared the plan's allowance, voice
    packs once the minutes neared theirs, a renewing pack (月包) once per line; priced in fen; drawn apart, so the
    same whether or not usage is built."""
    stream, _ = small
    addons = [r["data"] for r in stream if r["event_type"] == "subscription.addon_ordered"]
    by_kind = Counter(a["addon"]["kind"] for a in addons)
    assert by_kind["data_pack"] > by_kind["voice_pack"] > 0 and by_kind["roaming_pack"] > 0, by_kind
    assert all(isinstance(a["addon"]["price_fen"], int) and a["addon"]["price_fen"] > 0 for a in addons)
    renewing = Counter(
        (a["subscription_id"], a["addon"]["code"]) for a in addons if a["addon"]["validity_days"] is None
    )
    assert renewing and max(renewing.values()) == 1, "a renewing pack is ordered again"

    ordered_on: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for a in addons:
        ordered_on[a["subscription_id"], a["occurred_at"][:10]].append(a["addon"])
    plans = {p.code: p for p in PLANS}
    plan_of: dict[str, Plan] = {}  # per line, as of the record read: changes take effect on the 1st
    used: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # line, month → home data MB, minutes
    checked: Counter[str] = Counter()
    for r in stream:  # the summary of an order's day comes the next morning: the day's use is in it
        data = r["data"]
        if "plan" in data:
            plan_of[data["subscription_id"]] = plans[data["plan"]["code"]]
        if r["event_type"] != "usage.recorded":
            continue
        line = data["subscription_id"]
        so_far = used[line, data["usage_date"][:7]]
        so_far[0] += data["data_mb"] - data.get("roaming_data_mb", 0)
        so_far[1] += data["voice_minutes"] - data.get("roaming_voice_minutes", 0)
        for addon in ordered_on.get((line, data["usage_date"]), []):
            kind = addon["kind"]
            if kind == "roaming_pack":
                assert data["roaming"], (line, data["usage_date"])
            elif kind == "data_pack":
                assert so_far[0] >= 0.85 * plan_of[line].data_mb, (line, data["usage_date"])
            elif kind == "voice_pack":
                assert so_far[1] >= 0.9 * plan_of[line].minutes, (line, data["usage_date"])
            checked[kind] += 1
    assert sum(checked.values()) == len(addons), "an add-on ordered on a day the line was not used"

    quiet = Simulation(SMALL, usage=False)
    assert [r["data"] for r in quiet if r["event_type"] == "subscription.addon_ordered"] == addons


# -- churn ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def year_run() -> Simulation:
    sim = Simulation(Population(customers=3000, months=12, seed=5), usage=False)
    for _ in sim:
        pass
    return sim


@pytest.fixture(scope="module")
def year(year_run) -> dict[str, Any]:
    return year_run.truth


def test_about_a_quarter_of_the_customers_leave_in_a_year(year):
    left = sum(1 for t in year.values() if t.churn_period) / len(year)
    assert 0.2 <= left <= 0.3, f"{left:.1%} left in the year"


def test_churn_is_that_of_a_provincial_operator(year):
    at_risk = sum(len(t.months) for t in year.values())
    churned = [t for t in year.values() if t.churn_period]
    rate = len(churned) / at_risk
    assert 0.015 <= rate <= 0.03, f"{rate:.2%} of subscribers a month"
    kinds = Counter(t.churn_kind for t in churned)
    assert kinds["ported_out"] and kinds["terminated"] and kinds["arrears"]
    assert kinds["arrears"] < kinds["ported_out"] + kinds["terminated"]
    assert 0 < sum(t.bad_debt for t in year.values()) < len(year) * 0.05


def test_the_hazard_separates_churners_from_stayers(year):
    churn_month, other_months = [], []
    for t in year.values():
        for m in t.months:
            (churn_month if m.period == t.churn_period and t.churn_kind != "arrears" else other_months).append(m.hazard)
    assert sum(churn_month) / len(churn_month) > 4 * sum(other_months) / len(other_months)
    labels = [1] * len(churn_month) + [0] * len(other_months)
    assert _auc(churn_month + other_months, labels) > 0.8


def test_drivers_computed_from_the_emitted_events_match_the_truth_and_predict_churn():
    """A feature pipeline over the records finds the generating process's usage decline, and it has signal."""
    sim = Simulation(Population(customers=1500, months=7, seed=3))
    activity: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    joined: dict[str, str] = {}
    contract_end: dict[str, str] = {}
    trouble: Counter[tuple[str, str]] = Counter()
    for r in sim:
        data, kind = r["data"], r["event_type"]
        customer = data["customer_id"]
        if kind == "usage.recorded":
            a = activity[customer, data["usage_date"][:7]]
            a[0] += data["data_mb"] + 10 * data["voice_minutes"]
            a[1] += 1
        elif kind == "subscription.activated":
            joined.setdefault(customer, data["occurred_at"][:7])
            if "contract_end" in data:
                contract_end[customer] = data["contract_end"]
        elif (kind, data.get("days_overdue"), data.get("reason")) in TROUBLE or kind == "payment.failed":
            trouble[customer, data["occurred_at"][:7]] += 1
    periods = [f"2026-{m:02d}" for m in range(1, 8)]
    scores, labels, compared = [], [], 0
    for customer, t in sim.truth.items():
        history: list[float] = []
        for period in periods:
            month = next((m for m in t.months if m.period == period), None)
            if month is not None and len(history) >= 2:
                before = history[-4:-1]
                decline = max(0.0, 1 - history[-1] / (sum(before) / len(before)))
                assert decline == pytest.approx(month.drivers.usage_decline, abs=1e-3), (customer, period)
                compared += 1
                ending = customer in contract_end and (
                    datetime.fromisoformat(contract_end[customer]).strftime("%Y-%m") in _window(period)
                )
                i = periods.index(period)
                recent = sum(trouble[customer, p] for p in periods[max(i - 3, 0) : i])
                scores.append(5 * decline + 2 * ending + 0.7 * min(recent, 3))
                labels.append(int(t.churn_period == period and t.churn_kind != "arrears"))
            used, days = activity.get((customer, period), (0, 0))
            if days and period != joined[customer]:  # a joiner's first, partial month is no baseline
                history.append(used / days)
    assert compared > 5000
    assert _auc(scores, labels) > 0.7


def _window(period: str) -> set[str]:
    """The month and the two before it, as YYYY-MM."""
    year, month = map(int, period.split("-"))
    return {f"{year + (month - k - 1) // 12}-{(month - k - 1) % 12 + 1:02d}" for k in range(3)}


# -- tickets -------------------------------------------------------------------------------------------------------

MOVES = {
    "acknowledged": {"inProgress", "pending", "held", "resolved", "rejected", "cancelled"},
    "inProgress": {"pending", "held", "resolved", "cancelled"},
    "pending": {"inProgress", "held", "resolved", "cancelled"},
    "held": {"inProgress", "pending", "resolved", "cancelled"},
    "resolved": {"inProgress", "closed"},
    "closed": {"inProgress"},
}
"""The TMF621 moves ticketing allows; resolved/closed → inProgress is the reopen, within 7 days of the resolution."""
OPEN = {"acknowledged", "inProgress", "pending", "held"}


def _by_ticket(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        out[e["data"]["ticket_id"]].append(e)
    return out


def test_ticket_events_meet_their_contracts_and_come_per_customer_in_time_order(year_run):
    events = year_run.tickets
    contracts = Contracts.load(find_contracts_dir())
    assert {e["type"] for e in events} == {
        f"ticketing.ticket.{verb}.v1"
        for verb in ("created", "state_changed", "resolved", "closed", "sla_breached", "csat_recorded")
    }
    for e in events:
        contracts.validate_event(CloudEvent.model_validate(e))
        assert e["subject"] == e["data"]["customer_id"] and e["time"] == e["data"]["occurred_at"]
    assert len({e["id"] for e in events}) == len(events), "an event id is used twice"
    finished: set[str] = set()
    current, last = None, None
    for e in events:
        customer, at = e["subject"], parse_rfc3339(e["time"])
        if customer != current:
            assert customer not in finished, f"{customer}'s tickets come back after another customer's"
            if current:
                finished.add(current)
            current, last = customer, at
        assert at >= last, f"{e['id']} at {at} comes after an event of {last}"
        last = at
    end = datetime(2027, 1, 1, tzinfo=SHANGHAI)
    assert all(parse_rfc3339(e["time"]) < end for e in events), "an event after the simulation's end"


def test_each_ticket_moves_through_legal_states(year_run):
    tickets = _by_ticket(year_run.tickets)
    assert len(tickets) > 1000
    reopens = breaches = 0
    for ticket_id, story in tickets.items():
        created = story[0]
        assert created["type"] == "ticketing.ticket.created.v1", ticket_id
        assert ticket_id.startswith(f"TT-SIM-{created['subject'][4:]}-")
        state, opened = "acknowledged", parse_rfc3339(created["time"])
        resolved_at: datetime | None = None
        reopened = breached = False
        for e in story[1:]:
            data, verb, at = e["data"], e["type"].split(".")[2], parse_rfc3339(e["time"])
            if verb == "state_changed":
                assert data["from_state"] == state and data["to_state"] in MOVES[state], (ticket_id, state, data)
                if state in ("resolved", "closed"):
                    assert resolved_at is not None and at - resolved_at <= timedelta(days=7), ticket_id
                    reopened = True
                    reopens += 1
                state = data["to_state"]
            elif verb == "resolved":
                assert state == "resolved", ticket_id
                assert data["reopened"] == reopened and data["sla_met"] == (not breached), ticket_id
                assert data["first_contact"] == (not (reopened or breached)), ticket_id
                assert data["resolution_seconds"] == (at - opened).total_seconds()
                resolved_at = at
            elif verb == "closed":
                assert state == "closed" and parse_rfc3339(data["resolved_at"]) == resolved_at, ticket_id
            elif verb == "sla_breached":
                assert not breached and resolved_at is None and state in OPEN, ticket_id
                assert data["due_at"] == created["data"]["sla_due_at"]
                breached = True
                breaches += 1
            else:
                assert resolved_at is not None, f"{ticket_id}: a survey before any resolution"
    assert reopens and breaches


def test_the_truths_complaints_are_what_the_ticket_events_tell(year_run):
    """Replaying the events gives each month's unresolved_complaints driver: a feature pipeline can get it right."""
    tickets = _by_ticket(year_run.tickets)
    compared = 0
    for t in year_run.truth.values():
        raised = {c.ticket_id for c in t.complaints}
        assert [c.ticket_id for c in t.complaints] == [ticket_id for ticket_id in tickets if ticket_id in raised]
        for month in t.months:
            first = datetime.fromisoformat(f"{month.period}-01T00:00:00+08:00")
            count = 0
            for c in t.complaints:
                story = tickets[c.ticket_id]
                if story[0]["data"]["ticket_type"] == "inquiry" or parse_rfc3339(story[0]["time"]) >= first:
                    continue
                moves = [e["data"] | {"at": parse_rfc3339(e["time"])} for e in story if "to_state" in e["data"]]
                state = next((m["to_state"] for m in reversed(moves) if m["at"] <= first), "acknowledged")
                since = first - timedelta(days=61)
                reopened = any(
                    m["to_state"] == "inProgress"
                    and m["from_state"] in ("resolved", "closed")
                    and since <= m["at"] < first
                    for m in moves
                )
                count += state in OPEN or reopened
            assert min(count, 3) == month.drivers.unresolved_complaints, (t.customer_id, month.period)
            compared += count > 0
    assert compared > 300


def test_customers_whose_network_is_bad_raise_more_network_tickets(year_run):
    months: Counter[str] = Counter()
    raised: Counter[str] = Counter()
    for t in year_run.truth.values():
        network = {m.period: m.drivers.network for m in t.months}
        for badness in network.values():
            months["bad" if badness > 1 else "good" if badness < 0.3 else "fair"] += 1
        for c in t.complaints:
            badness = network.get(c.opened_at.strftime("%Y-%m"))
            if c.category == "network_coverage" and badness is not None:
                raised["bad" if badness > 1 else "good" if badness < 0.3 else "fair"] += 1
    rate = {group: raised[group] / months[group] for group in months}
    assert rate["bad"] > 3 * rate["good"] and rate["fair"] > rate["good"], rate


def test_unresolved_complaints_raise_churn(year):
    months: Counter[bool] = Counter()
    left: Counter[bool] = Counter()
    for t in year.values():
        for m in t.months:
            unresolved = m.drivers.unresolved_complaints > 0
            months[unresolved] += 1
            left[unresolved] += m.period == t.churn_period and t.churn_kind != "arrears"
    assert months[True] > 300
    assert left[True] / months[True] > 2.5 * left[False] / months[False], (left, months)


def test_tickets_are_the_same_for_a_seed_with_or_without_usage_and_a_smaller_population_is_a_prefix():
    population = Population(customers=300, months=6, seed=7)
    sim = Simulation(population)
    list(sim)
    first = ticket_events(population)
    assert first and first == sim.tickets
    assert churn_truth(population) == sim.truth
    assert first != ticket_events(Population(customers=300, months=6, seed=8))
    fewer = ticket_events(Population(customers=150, months=6, seed=7))
    assert first[: len(fewer)] == fewer
    assert first[len(fewer)]["subject"] > fewer[-1]["subject"]


# -- batches -------------------------------------------------------------------------------------------------------


def test_batches_are_ndjson_cut_between_customers():
    stream = list(records(Population(customers=60, months=2, seed=4)))
    batches = list(ndjson_batches(stream, 400))
    lines = [json.loads(line) for b in batches for line in b.body.splitlines()]
    assert lines == stream
    assert all(b.records == b.body.count(b"\n") <= 400 for b in batches)
    seen: set[str] = set()
    for b in batches:
        customers = [json.loads(line)["data"]["customer_id"] for line in b.body.splitlines()]
        split = set(customers) & seen
        assert split == ({customers[0]} if b.follows else set()), "a customer split between concurrent batches"
        seen.update(customers)
    assert sum(b.follows for b in batches) < len(batches) / 4


def test_a_customer_bigger_than_a_batch_goes_on_in_batches_that_follow():
    stream = list(records(Population(customers=3, months=2, seed=4)))
    batches = list(ndjson_batches(stream, 25))
    assert [json.loads(line) for b in batches for line in b.body.splitlines()] == stream
    for before, batch in itertools.pairwise(batches):
        first = json.loads(batch.body.splitlines()[0])["data"]["customer_id"]
        last = json.loads(before.body.splitlines()[-1])["data"]["customer_id"]
        assert batch.follows == (first == last)
    assert any(b.follows for b in batches)


# -- pushing -------------------------------------------------------------------------------------------------------


async def test_the_rate_limiter_holds_the_rate_and_catches_up_at_most_one_second():
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(1000, clock=lambda: now[0], sleep=sleep)
    sent_at = []
    for _ in range(10):
        await limiter.take(500)
        sent_at.append(now[0] - 100.0)
    assert sent_at == pytest.approx([0.5 * k for k in range(1, 11)])
    now[0] += 30  # idle: only one second's worth is saved up
    await limiter.take(3000)
    assert now[0] - 100.0 == pytest.approx(5.0 + 30 + 2.0)


def test_retry_after_is_read_as_seconds_or_a_date():
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("soon") == 1.0
    assert retry_after_seconds("86400") == 60.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert 15 < retry_after_seconds(later) <= 20


def _by_customer(stream: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each customer's event ids in the order they came: what must survive concurrent pushes."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in stream:
        out[r["data"]["customer_id"]].append(r["event_id"])
    return out


class FakeReceiver:
    """The receiving end as the BOSS meets it: busy (503) for the first `busy` pushes, then receipts that call a
    record seen before a duplicate. Records every request it got and when."""

    def __init__(self, busy: int = 0, status: int = 202) -> None:
        self.busy = busy
        self.status = status
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.seen: set[str] = set()
        self.app = FastAPI()
        self.app.post("/boss/v1/events")(self.events)

    async def events(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append((time.monotonic(), dict(request.headers), body))
        if len(self.requests) <= self.busy:
            return Response(status_code=503, headers={"Retry-After": "1"})
        if self.status != 202:
            return JSONResponse({"title": "Unauthorized", "detail": "bad signature"}, status_code=self.status)
        raw = gzip.decompress(body) if request.headers.get("content-encoding") == "gzip" else body
        ids = [json.loads(line)["event_id"] for line in raw.splitlines()]
        duplicates = sum(i in self.seen for i in ids)
        self.seen.update(ids)
        return JSONResponse(
            {"accepted": len(ids) - duplicates, "duplicates": duplicates, "rejected": 0, "results": []}, 202
        )

    def received(self) -> list[dict[str, Any]]:
        """The records of every push answered with a receipt, in the order they came."""
        out = []
        for _, headers, body in self.requests[self.busy :]:
            raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
            out.extend(json.loads(line) for line in raw.splitlines())
        return out


async def test_the_pusher_signs_retries_a_busy_receiver_after_retry_after_and_counts_receipts():
    stream = list(records(Population(customers=30, months=2, seed=9)))
    batches = list(ndjson_batches(stream, 300))
    receiver = FakeReceiver(busy=1)
    async with serve(receiver.app) as url:
        summary = await push(url, batches, source="boss-sim", secret="s3cret", concurrency=3, progress=False)
        again = await push(url, batches, source="boss-sim", secret="s3cret", concurrency=3, gzip=True, progress=False)
    assert (summary.sent, summary.accepted, summary.duplicates, summary.rejected) == (len(stream), len(stream), 0, 0)
    assert (again.accepted, again.duplicates) == (0, len(stream))
    busy_at, _, busy_body = receiver.requests[0]
    retried = [t for t, _, body in receiver.requests[1:] if body == busy_body]
    assert retried and retried[0] - busy_at >= 0.9, "the 503's Retry-After: 1 was not waited out"
    for _, headers, body in receiver.requests:
        assert headers["content-type"] == "application/x-ndjson"
        assert headers[SOURCE_HEADER.lower()] == "boss-sim"
        verify("s3cret", headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()], body)
    assert sum(1 for h in receiver.requests if h[1].get("content-encoding") == "gzip") == len(batches)
    assert _by_customer(receiver.received()[: len(stream)]) == _by_customer(stream), "out of order or not once"


async def test_the_pusher_holds_a_batch_that_follows_until_the_one_before_is_taken():
    stream = list(records(Population(customers=2, months=2, seed=4)))
    batches = list(ndjson_batches(stream, 20))
    assert sum(b.follows for b in batches) >= 3
    receiver = FakeReceiver()
    async with serve(receiver.app) as url:
        summary = await push(url, batches, concurrency=8, progress=False)
    assert summary.accepted == len(stream)
    assert _by_customer(receiver.received()) == _by_customer(stream)


async def test_the_pusher_waits_for_a_receiver_that_is_not_up_yet():
    receiver = FakeReceiver()
    port = free_port()
    batches = [Batch(b'{"event_id":"E1","event_type":"usage.recorded","data":{}}\n', 1)]
    sending = asyncio.create_task(push(f"http://127.0.0.1:{port}", batches, rate=100, progress=False))
    await asyncio.sleep(0.5)
    assert not sending.done()
    async with serve(receiver.app, port):
        summary = await sending
    assert summary.accepted == 1


async def test_a_refused_push_stops_with_the_receivers_reason():
    receiver = FakeReceiver(status=401)
    batches = list(ndjson_batches(records(Population(customers=5, months=1)), 100))
    async with serve(receiver.app) as url:
        with pytest.raises(PushRefused) as refused:
            await push(url, batches, secret="wrong", progress=False)
    assert refused.value.status == 401
    assert "bad signature" in refused.value.detail


def test_the_command_writes_the_same_records_to_a_file(tmp_path: Path):
    out = tmp_path / "boss.ndjson.gz"
    result = CliRunner().invoke(
        cli, ["simulate", "--customers", "12", "--months", "2", "--seed", "3", "--gzip", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    assert written == list(records(Population(customers=12, months=2, seed=3)))
    assert f"{len(written):,} records written" in result.output


def test_the_command_refuses_a_batch_larger_than_the_adapter_takes():
    result = CliRunner().invoke(cli, ["simulate", "--batch-size", "5001", "--out", "x.ndjson"])
    assert result.exit_code == 2
    assert "batch-size" in result.output
