"""The feature store fed through the real broker: every consumed event lands at the time it happened, usage is kept
per line and day and a corrected summary replaces the line's day, a repeated event counts once, erasure keeps
nothing, a merge re-keys, a broken event is dead-lettered; and the bulk history loader builds exactly the store the
consumer builds from the same events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

import crm_churn
from crm_churn.domain.ingest import (
    ACTIVATED,
    ADDON_ORDERED,
    COLLECTION_STATUS_CHANGED,
    CONTACT_RESPONDED,
    CONTACT_SENT,
    CREDIT_LIMIT_CHANGED,
    INVOICE_ISSUED,
    PAYMENT_FAILED,
    PAYMENT_OVERDUE,
    PAYMENT_RECEIVED,
    PAYMENT_REFUNDED,
    PLAN_CHANGED,
    PORTED_OUT,
    PROFILE_CREATED,
    PROFILE_ERASED,
    PROFILE_MERGED,
    PROFILE_UPDATED,
    RECHARGED,
    RESUMED,
    SIM_SWAPPED,
    SUSPENDED,
    TERMINATED,
    TICKET_CLOSED,
    TICKET_CREATED,
    TICKET_CSAT_RECORDED,
    TICKET_RESOLVED,
    TICKET_SLA_BREACHED,
    TICKET_STATE_CHANGED,
    USAGE_RECORDED,
    boss_record_event,
    load_history,
)
from crm_churn.domain.store import FactKind
from crm_churn.events import SCORE_COMPUTED, score_computed, subscription
from crm_kit.db import Database, upgrade_async
from crm_kit.events import load_contracts, parse_rfc3339
from crm_kit.settings import find_contracts_dir
from crm_kit.simulator import Population, Simulation
from crm_kit.testing import read_topic

from .conftest import Churn, Store, open_store

PASSED_OVER = {
    "ticketing.ticket.sla_warning.v1",
    "customer.profile.consent_changed.v1",
    "customer.profile.dnd_changed.v1",
    "customer.profile.key_account_changed.v1",
}
"""Types on the topics churn reads that say nothing about churn or bad debt."""


def utc(moment: str) -> datetime:
    return parse_rfc3339(moment).astimezone(UTC)


def facts_of(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(r["kind"], r["occurred_at"], r["amount_fen"], r["quantity"], r["detail"], r["ref"]) for r in rows}


USAGE_FIGURES = ("voice_minutes", "sms_count", "data_mb", "roaming_mb", "roaming_lines", "charged_fen")
MIGRATIONS = Path(crm_churn.__file__).parent / "migrations"


def usage_of(rows: list[dict[str, Any]]) -> dict[tuple[date, str], tuple[int, ...]]:
    """Per day and line: voice minutes, SMS, data MB, roaming MB, roamed (0 or 1), charged fen."""
    return {(r["day"], r["subscription_id"]): tuple(r[c] for c in USAGE_FIGURES) for r in rows}


def per_day(rows: list[dict[str, Any]]) -> dict[date, tuple[int, ...]]:
    """The lines' figures summed per day, as features read them (roaming: the lines that roamed)."""
    days: dict[date, tuple[int, ...]] = {}
    for (day, _), figures in usage_of(rows).items():
        days[day] = tuple(map(sum, zip(days.get(day, (0,) * len(figures)), figures, strict=True)))
    return days


def test_churn_subscribes_to_exactly_what_the_store_learns_from() -> None:
    contracts = load_contracts(find_contracts_dir())
    topics = yaml.safe_load((contracts.root / "topics.yaml").read_text(encoding="utf-8"))["topics"]
    ours = {name for name, t in topics.items() if "churn" in t["consumers"]}
    handled = set(subscription("churn").handlers)

    assert set(subscription("churn").topics) == ours
    assert handled | PASSED_OVER == {e for name in ours for e in topics[name]["events"]}
    assert not handled & PASSED_OVER
    assert all(contracts.knows(t) for t in handled)


def test_a_score_is_published_as_its_contract_says() -> None:
    scored_at = datetime(2026, 11, 23, 2, tzinfo=UTC)
    reasons = [{"feature": "complaints_30d", "description": "2 complaints in 30 days (近期投诉)", "contribution": 0.14}]

    event = score_computed("C1", "churn", Decimal("0.87306"), "high", "churn-lgbm-2026.11.1", reasons, scored_at)

    load_contracts(find_contracts_dir()).validate_event(event)
    assert (event.type, event.subject, event.source, event.time) == (SCORE_COMPUTED, "C1", "/crm/churn", scored_at)
    assert event.data["score"] == "0.8731"
    assert event.data["scored_at"] == event.data["occurred_at"] == "2026-11-23T02:00:00+00:00"
    assert score_computed("C1", "bad_debt", Decimal(1), "low", "v", [], scored_at).data["score"] == "1.0000"


async def test_line_and_billing_events_land_at_the_time_they_happened(churn: Churn, store: Store) -> None:
    ids = {"customer_id": "C1", "subscription_id": "S1"}
    activated = churn.example(ACTIVATED, "individual_postpaid", **ids)
    other = churn.example(ACTIVATED, "organization_prepaid_dealer", customer_id="C2", subscription_id="S2")
    plan = churn.example(PLAN_CHANGED, **ids)
    suspended = churn.example(SUSPENDED, **ids)
    resumed = churn.example(RESUMED, **ids)
    swapped = churn.example(SIM_SWAPPED, "lost_sim_at_store", **ids)
    addon = churn.example(ADDON_ORDERED, "data_pack_10g", **ids)
    terminated = churn.example(TERMINATED, **ids)
    ported = churn.example(PORTED_OUT, customer_id="C2", subscription_id="S2")
    invoice = churn.example(INVOICE_ISSUED, "individual_monthly", customer_id="C1")
    paid = churn.example(PAYMENT_RECEIVED, "wechat_pay_for_invoice", customer_id="C1")
    prepaid = churn.example(PAYMENT_RECEIVED, "counter_prepayment", customer_id="C1")
    failed = churn.example(PAYMENT_FAILED, customer_id="C1")
    refunded = churn.example(PAYMENT_REFUNDED, customer_id="C1")
    overdue = churn.example(PAYMENT_OVERDUE, customer_id="C1")
    recharged = churn.example(RECHARGED, "alipay_topup", **ids)
    collection = churn.example(COLLECTION_STATUS_CHANGED, "hard_suspended_for_arrears", customer_id="C1")
    limit = churn.example(CREDIT_LIMIT_CHANGED, "star_level_upgrade", customer_id="C1")

    await churn.send(
        churn.valid(ACTIVATED, activated),
        churn.valid(ACTIVATED, other),
        churn.valid(PLAN_CHANGED, plan),
        churn.valid(SUSPENDED, suspended),
        churn.valid(RESUMED, resumed),
        churn.valid(SIM_SWAPPED, swapped),
        churn.valid(ADDON_ORDERED, addon),
        churn.valid(TERMINATED, terminated),
        churn.valid(PORTED_OUT, ported),
        churn.valid(INVOICE_ISSUED, invoice),
        churn.valid(PAYMENT_RECEIVED, paid),
        churn.valid(PAYMENT_RECEIVED, prepaid),
        churn.valid(PAYMENT_FAILED, failed),
        churn.valid(PAYMENT_REFUNDED, refunded),
        churn.valid(PAYMENT_OVERDUE, overdue),
        churn.valid(RECHARGED, recharged),
        churn.valid(COLLECTION_STATUS_CHANGED, collection),
        churn.valid(CREDIT_LIMIT_CHANGED, limit),
    )

    assert facts_of(await store.facts("C1")) == {
        (FactKind.LINE_ACTIVATED, utc(activated["occurred_at"]), 12900, None, "postpaid", "S1"),
        (FactKind.PLAN_CHANGED, utc(plan["occurred_at"]), 19900, None, None, "S1"),
        (FactKind.LINE_SUSPENDED, utc(suspended["occurred_at"]), None, None, "arrears", "S1"),
        (FactKind.LINE_RESUMED, utc(resumed["occurred_at"]), None, None, None, "S1"),
        (FactKind.SIM_SWAPPED, utc(swapped["occurred_at"]), None, None, None, "S1"),
        (FactKind.ADDON_ORDERED, utc(addon["occurred_at"]), 3000, None, "data_pack", "S1"),
        (FactKind.LINE_TERMINATED, utc(terminated["occurred_at"]), None, None, terminated["reason"], "S1"),
        (
            FactKind.INVOICE_ISSUED,
            utc(invoice["issued_at"]),
            invoice["amount_due_fen"],
            None,
            None,
            invoice["invoice_id"],
        ),
        (FactKind.PAYMENT_RECEIVED, utc(paid["paid_at"]), paid["amount_fen"], None, None, paid["invoice_id"]),
        (FactKind.PAYMENT_RECEIVED, utc(prepaid["paid_at"]), prepaid["amount_fen"], None, None, None),
        (
            FactKind.PAYMENT_FAILED,
            utc(failed["attempted_at"]),
            failed["amount_fen"],
            None,
            "insufficient_funds",
            failed["invoice_id"],
        ),
        (FactKind.PAYMENT_REFUNDED, utc(refunded["refunded_at"]), refunded["amount_fen"], None, None, None),
        (
            FactKind.PAYMENT_OVERDUE,
            utc(overdue["occurred_at"]),
            overdue["amount_overdue_fen"],
            4,
            None,
            overdue["invoice_id"],
        ),
        (FactKind.RECHARGED, utc(recharged["recharged_at"]), recharged["amount_fen"], None, None, "S1"),
        (
            FactKind.COLLECTION_STATUS,
            utc(collection["occurred_at"]),
            collection.get("outstanding_fen"),
            None,
            "hard_suspended",
            None,
        ),
        (FactKind.CREDIT_LIMIT, utc(limit["occurred_at"]), limit["to_limit_fen"], None, None, None),
    }
    assert facts_of(await store.facts("C2")) == {
        (FactKind.LINE_ACTIVATED, utc(other["occurred_at"]), 3000, None, "prepaid", "S2"),
        (FactKind.LINE_PORTED_OUT, utc(ported["occurred_at"]), None, None, "china_unicom", "S2"),
    }
    assert await store.lines("C1") == [
        {
            "subscription_id": "S1",
            "customer_id": "C1",
            "activated_at": utc(activated["occurred_at"]),
            "payment_mode": "postpaid",
            "contract_end": None,
            "dealer_code": None,
            "closed_at": utc(terminated["occurred_at"]),
            "close_kind": "terminated",
        }
    ]
    (line,) = await store.lines("C2")
    assert (line["contract_end"], line["dealer_code"], line["close_kind"]) == (
        date(2028, 11, 30),
        "GD-SZ-DLR-0217",
        "ported_out",
    )
    assert await store.profile("C1") == {
        "customer_id": "C1",
        "customer_type": "individual",
        "region": "BJ",
        "first_seen_at": utc(activated["occurred_at"]),
        "erased_at": None,
        "merged_into": None,
    }
    assert (await store.profile("C2") or {})["customer_type"] == "organization"


async def test_usage_is_kept_per_line_and_day(churn: Churn, store: Store) -> None:
    """Three lines on 19 November (one roaming with its split, one roaming without: all its data counts as
    roaming), one of them again on the 20th: a row per line and day, summing to the customer's days."""
    domestic = churn.example(USAGE_RECORDED, "domestic_day", customer_id="C3", subscription_id="S31")
    hong_kong = churn.example(
        USAGE_RECORDED, "roaming_hong_kong", customer_id="C3", subscription_id="S32", usage_date="2026-11-19"
    )
    no_split = churn.example(
        USAGE_RECORDED, "iot_data_only", customer_id="C3", subscription_id="S33", roaming=True, charged_fen=600
    )
    next_day = {**domestic, "usage_date": "2026-11-20", "occurred_at": "2026-11-21T03:15:00+08:00"}

    await churn.send(*(churn.valid(USAGE_RECORDED, d) for d in (domestic, hong_kong, no_split, next_day)))

    rows = await store.usage("C3")
    assert usage_of(rows) == {
        (date(2026, 11, 19), "S31"): (37, 4, 2150, 0, 0, 0),
        (date(2026, 11, 19), "S32"): (25, 2, 1230, 860, 1, 2500),
        (date(2026, 11, 19), "S33"): (0, 0, 35, 35, 1, 600),
        (date(2026, 11, 20), "S31"): (37, 4, 2150, 0, 0, 0),
    }
    assert per_day(rows) == {
        date(2026, 11, 19): (37 + 25 + 0, 4 + 2 + 0, 2150 + 1230 + 35, 860 + 35, 2, 0 + 2500 + 600),
        date(2026, 11, 20): (37, 4, 2150, 0, 0, 0),
    }


async def test_a_corrected_summary_replaces_its_lines_day(churn: Churn, store: Store, database_url: Any) -> None:
    """The BOSS re-rates a line's day (new event id, later, other figures): the correction replaces the first
    summary, of that line only, through the consumer as through `load_history`."""
    first = churn.example(USAGE_RECORDED, "domestic_day", customer_id="C13", subscription_id="S13")
    other_line = churn.example(USAGE_RECORDED, "iot_data_only", customer_id="C13", subscription_id="S14")
    corrected = {
        **first,
        "boss_event_id": "BOSS-EVT:20261121:000001",
        "occurred_at": "2026-11-21T03:15:00+08:00",
        "voice_minutes": 41,
        "data_mb": 2300,
        "roaming": True,
        "roaming_data_mb": 120,
        "charged_fen": 800,
    }
    events = [(USAGE_RECORDED, d) for d in (first, other_line, corrected)]

    await churn.send(*(churn.valid(t, d) for t, d in events))

    consumed = usage_of(await store.usage("C13"))
    assert consumed == {
        (date(2026, 11, 19), "S13"): (41, 4, 2300, 120, 1, 800),
        (date(2026, 11, 19), "S14"): (0, 0, 35, 0, 0, 0),
    }
    url = await database_url("corrected")
    await upgrade_async(url, MIGRATIONS)
    async with open_store(url) as loaded:
        await load_history(loaded.db, events)
        assert usage_of(await loaded.usage("C13")) == consumed


async def test_ticket_and_campaign_events_become_facts(churn: Churn, store: Store) -> None:
    who = {"customer_id": "C4"}
    complaint = churn.example(TICKET_CREATED, **who)
    inquiry = churn.example(
        TICKET_CREATED, **who, ticket_id="T2", ticket_type="inquiry", category="roaming", priority="low"
    )
    base = churn.example(TICKET_STATE_CHANGED, **who)
    moves = {
        ("inProgress", "resolved"): "2026-11-21T16:40:00+08:00",
        ("resolved", "inProgress"): "2026-11-22T09:00:00+08:00",
        ("closed", "acknowledged"): "2026-11-23T09:00:00+08:00",
        ("acknowledged", "cancelled"): "2026-11-24T09:00:00+08:00",
        ("pending", "rejected"): "2026-11-25T09:00:00+08:00",
    }
    changes = [
        {
            **base,
            "from_state": a,
            "to_state": b,
            "occurred_at": at,
            "ticket_id": "T2" if b == "cancelled" else complaint["ticket_id"],
        }
        for (a, b), at in moves.items()
    ]
    resolved = churn.example(TICKET_RESOLVED, **who)
    closed = churn.example(TICKET_CLOSED, **who)
    breached = churn.example(TICKET_SLA_BREACHED, **who)
    warned = churn.example("ticketing.ticket.sla_warning.v1", **who)
    csat = churn.example(TICKET_CSAT_RECORDED, **who)
    sent = churn.example(CONTACT_SENT, **who)
    responded = churn.example(CONTACT_RESPONDED, **who)

    await churn.send(
        churn.valid(TICKET_CREATED, complaint),
        churn.valid(TICKET_CREATED, inquiry),
        *(churn.valid(TICKET_STATE_CHANGED, c) for c in changes),
        churn.valid(TICKET_RESOLVED, resolved),
        churn.valid(TICKET_CLOSED, closed),
        churn.valid(TICKET_SLA_BREACHED, breached),
        churn.valid("ticketing.ticket.sla_warning.v1", warned),
        churn.valid(TICKET_CSAT_RECORDED, csat),
        churn.valid(CONTACT_SENT, sent),
        churn.valid(CONTACT_RESPONDED, responded),
    )

    t1 = complaint["ticket_id"]
    assert facts_of(await store.facts("C4")) == {
        (FactKind.TICKET_OPENED, utc(complaint["occurred_at"]), None, 1, "billing_dispute", t1),
        (FactKind.TICKET_OPENED, utc(inquiry["occurred_at"]), None, 0, "roaming", "T2"),
        (FactKind.TICKET_REOPENED, utc(moves["resolved", "inProgress"]), None, None, None, t1),
        (FactKind.TICKET_REOPENED, utc(moves["closed", "acknowledged"]), None, None, None, t1),
        (FactKind.TICKET_CLOSED, utc(moves["acknowledged", "cancelled"]), None, None, None, "T2"),
        (FactKind.TICKET_CLOSED, utc(moves["pending", "rejected"]), None, None, None, t1),
        (FactKind.TICKET_RESOLVED, utc(resolved["occurred_at"]), None, None, None, resolved["ticket_id"]),
        (FactKind.TICKET_CLOSED, utc(closed["occurred_at"]), None, None, None, closed["ticket_id"]),
        (
            FactKind.TICKET_SLA_BREACHED,
            utc(breached["occurred_at"]),
            None,
            None,
            breached["clock"],
            breached["ticket_id"],
        ),
        (FactKind.CSAT, utc(csat["occurred_at"]), None, csat["score"], None, csat["ticket_id"]),
        (FactKind.CONTACT_SENT, utc(sent["occurred_at"]), None, None, sent["channel"], sent["campaign_id"]),
        (FactKind.CONTACT_RESPONDED, utc(responded["occurred_at"]), None, None, "accepted", responded["campaign_id"]),
    }


async def test_profile_events_keep_the_newest_type_and_region_given(churn: Churn, store: Store) -> None:
    created = churn.example(PROFILE_CREATED, "from_activation", customer_id="C5")
    learned = churn.example(PROFILE_UPDATED, "details_learned", customer_id="C5")
    silent = churn.example(PROFILE_UPDATED, "line_suspended", customer_id="C5")
    unknown = churn.example(PROFILE_CREATED, "unknown_from_non_activation_event", customer_id="C6")

    await churn.send(
        churn.valid(PROFILE_CREATED, created),
        churn.valid(PROFILE_UPDATED, learned),
        churn.valid(PROFILE_UPDATED, silent),
        churn.valid(PROFILE_CREATED, unknown),
    )

    profile = await store.profile("C5")
    assert profile is not None
    assert (profile["customer_type"], profile["region"]) == (learned["customer_type"], learned["region"])
    assert profile["first_seen_at"] == utc(created["created_at"])
    assert await store.profile("C6") == {
        "customer_id": "C6",
        "customer_type": None,
        "region": None,
        "first_seen_at": utc(unknown["created_at"]),
        "erased_at": None,
        "merged_into": None,
    }


async def test_an_event_delivered_twice_counts_once(churn: Churn, store: Store) -> None:
    usage = churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "domestic_day", customer_id="C7"))
    ticket = churn.valid(TICKET_CREATED, churn.example(TICKET_CREATED, customer_id="C7"))

    await churn.send(usage, ticket)
    await churn.send(usage, ticket)

    assert usage_of(await store.usage("C7")) == {
        (date(2026, 11, 19), usage.data["subscription_id"]): (37, 4, 2150, 0, 0, 0)
    }
    assert len(await store.facts("C7")) == 1


async def test_an_erased_customer_keeps_nothing_and_later_events_are_dropped(churn: Churn, store: Store) -> None:
    who = {"customer_id": "C8", "subscription_id": "S8"}
    await churn.send(
        churn.valid(ACTIVATED, churn.example(ACTIVATED, **who)),
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "domestic_day", **who)),
        churn.valid(TICKET_CREATED, churn.example(TICKET_CREATED, customer_id="C8")),
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "domestic_day", customer_id="C9")),
    )
    erased = churn.example(PROFILE_ERASED, customer_id="C8")

    await churn.send(churn.valid(PROFILE_ERASED, erased))
    await churn.send(
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "domestic_day", **who, usage_date="2026-12-02")),
        churn.valid(TICKET_CREATED, churn.example(TICKET_CREATED, customer_id="C8", ticket_id="T9")),
        churn.valid(ACTIVATED, churn.example(ACTIVATED, customer_id="C8", subscription_id="S88")),
    )

    assert await store.usage("C8") == []
    assert await store.facts("C8") == []
    assert await store.lines("C8") == []
    profile = await store.profile("C8")
    assert profile is not None and profile["erased_at"] == utc(erased["erased_at"])
    assert len(await store.usage("C9")) == 1, "another customer's data stays"


async def test_a_merged_duplicates_history_becomes_the_survivors(churn: Churn, store: Store) -> None:
    """Its lines' usage is re-keyed to the survivor, and a correction of one of them sent after the merge under the
    duplicate replaces the moved row."""
    survivor = {"customer_id": "C10", "subscription_id": "S10"}
    duplicate = {"customer_id": "C11", "subscription_id": "S11"}
    activated = churn.example(ACTIVATED, "organization_prepaid_dealer", **duplicate)
    await churn.send(
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "domestic_day", **survivor)),
        churn.valid(ACTIVATED, activated),
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "roaming_hong_kong", **duplicate)),
        churn.valid(USAGE_RECORDED, churn.example(USAGE_RECORDED, "iot_data_only", **duplicate)),
        churn.valid(TICKET_CREATED, churn.example(TICKET_CREATED, customer_id="C11")),
    )

    await churn.send(churn.valid(PROFILE_MERGED, churn.example(PROFILE_MERGED, survivor_id="C10", merged_id="C11")))
    later = churn.example(USAGE_RECORDED, "domestic_day", **duplicate, usage_date="2026-11-10")
    await churn.send(churn.valid(USAGE_RECORDED, later))

    assert usage_of(await store.usage("C10")) == {
        (date(2026, 11, 10), "S11"): (37, 4, 2150, 0, 0, 0),
        (date(2026, 11, 19), "S10"): (37, 4, 2150, 0, 0, 0),
        (date(2026, 11, 19), "S11"): (0, 0, 35, 0, 0, 0),
    }
    assert {(f["kind"], f["ref"]) for f in await store.facts("C10")} == {
        (FactKind.LINE_ACTIVATED, "S11"),
        (FactKind.TICKET_OPENED, "TT202611200001"),
    }
    assert [line["subscription_id"] for line in await store.lines("C10")] == ["S11"]
    assert await store.usage("C11") == await store.facts("C11") == []
    kept, merged = await store.profile("C10"), await store.profile("C11")
    assert kept is not None and merged is not None
    assert merged["merged_into"] == "C10"
    assert (kept["customer_type"], kept["region"], kept["first_seen_at"]) == (
        "organization",
        "GD-SZ",
        utc(activated["occurred_at"]),
    )


async def test_an_event_breaking_its_contract_is_dead_lettered_and_stores_nothing(churn: Churn, store: Store) -> None:
    broken = churn.example(USAGE_RECORDED, "domestic_day", customer_id="C12")
    del broken["data_mb"]

    await churn.send(churn.event(USAGE_RECORDED, broken))

    (record,) = await read_topic(churn.bootstrap, "billing.usage.dlq", expect=1)
    assert record.key == b"C12"
    assert dict(record.headers)["dlq.reason"] == b"contract"
    assert await store.usage("C12") == []


async def test_the_history_loader_builds_the_store_the_consumer_builds(
    churn: Churn, store: Store, database_url: Any
) -> None:
    """Five simulated customers over two months, then a merge, an erasure and events after them, through the
    broker and the consumer on one side, through `load_history` on the other."""
    history = [boss_record_event(r) for r in Simulation(Population(customers=5, months=2))]
    customers = sorted({data["customer_id"] for _, data in history})
    survivor, duplicate, erased = customers[:3]
    day_after = max((data for t, data in history if t == USAGE_RECORDED), key=lambda d: d["usage_date"])
    afterwards = [
        (PROFILE_MERGED, {"survivor_id": survivor, "merged_id": duplicate, "merged_at": "2026-03-01T10:00:00+08:00"}),
        (
            PROFILE_ERASED,
            {"customer_id": erased, "erased_at": "2026-03-01T11:00:00+08:00", "reason": "customer_request"},
        ),
        *(
            (USAGE_RECORDED, {**day_after, "customer_id": c, "boss_event_id": f"LATE-{c}", "usage_date": "2026-03-01"})
            for c in (duplicate, erased)
        ),
    ]

    await churn.send(*(churn.valid(t, d) for t, d in history))
    await churn.send(*(churn.valid(t, d) for t, d in afterwards))
    consumed = await store.contents()

    url = await database_url("history")
    await upgrade_async(url, MIGRATIONS)
    db = Database(url)
    try:
        counts = await load_history(db, [*history, *afterwards])
    finally:
        await db.dispose()
    async with open_store(url) as loaded:
        assert await loaded.contents() == consumed

    assert counts.events == len(history) + len(afterwards)
    assert counts.ignored == 1, "the erased customer's late usage"
    assert len(consumed["usage_day"]) > 100
    assert {len(consumed[t]) > 0 for t in ("fact", "line", "profile")} == {True}
    assert not any(
        row["customer_id"] in (duplicate, erased) for t in ("usage_day", "fact", "line") for row in consumed[t]
    )
