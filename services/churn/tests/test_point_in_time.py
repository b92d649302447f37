"""Point-in-time correctness: a training row as of a snapshot is built only from what had happened before it.

The proof: build every customer's row as of a snapshot, then let the store learn of everything a leaky pipeline
could pick up after it — usage on the snapshot's own day and later, bills, payments gone overdue, a plan change,
a complaint, a campaign contact, the line ported out — and build the rows again: not one value moves. The label,
which is meant to look ahead, does see the port-out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest_asyncio

from crm_churn.domain import ingest
from crm_churn.domain.features import FEATURE_NAMES, compute
from crm_churn.domain.scoring import RegionRates, features_now
from crm_churn.domain.training_set import labels, read_history
from crm_kit.db import Database, upgrade_async
from crm_kit.presentation import SHANGHAI
from crm_kit.simulator import Population, Simulation

MIGRATIONS = Path(__file__).resolve().parent.parent / "crm_churn" / "migrations"
SNAPSHOT = datetime(2026, 5, 1, 6, tzinfo=SHANGHAI)


@pytest_asyncio.fixture
async def store(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    """Four months of 40 simulated customers: the store as it stood well after the snapshot (May 1st)."""
    url = await database_url("churn")
    await upgrade_async(url, MIGRATIONS)
    db = Database(url)
    sim = Simulation(Population(customers=40, months=4))
    events = [ingest.boss_record_event(r) for r in sim]
    await ingest.load_history(db, [e for e in events if _time(e[1]) < SNAPSHOT])
    yield db
    await db.dispose()


def _time(data: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(data.get("occurred_at") or data.get("created_at")))


async def _rows(db: Database, until: datetime) -> pd.DataFrame:
    async with db.sessions() as session:
        history = await read_history(session, until=until)
    return compute(history, [SNAPSHOT]).sort_values("customer_id").reset_index(drop=True)


def _after(customer: str, subscription: str, at: datetime) -> list[tuple[str, dict[str, object]]]:
    """One of every kind of thing that can happen to a customer, all at or after the snapshot."""
    ids = {"customer_id": customer, "account_id": "A1", "subscription_id": subscription, "msisdn": "13300000000"}
    t = at.isoformat()
    return [
        (
            ingest.USAGE_RECORDED,
            {
                **ids,
                "boss_event_id": "B1",
                "occurred_at": t,
                "usage_date": at.date().isoformat(),
                "voice_minutes": 900,
                "sms_count": 90,
                "data_mb": 90_000,
                "roaming": True,
                "charged_fen": 99_000,
            },
        ),
        (
            ingest.ADDON_ORDERED,
            {
                **ids,
                "boss_event_id": "B9",
                "occurred_at": t,
                "addon": {"code": "PACK-DATA-10G", "name": "10GB流量包(月包)", "kind": "data_pack", "price_fen": 3000},
            },
        ),
        (
            ingest.INVOICE_ISSUED,
            {
                "boss_event_id": "B2",
                "customer_id": customer,
                "account_id": "A1",
                "occurred_at": t,
                "issued_at": t,
                "invoice_id": "INV-X",
                "billing_period": "2026-04",
                "due_date": "2026-05-25",
                "currency": "CNY",
                "amount_due_fen": 999_900,
                "items": [],
                "previous_balance_fen": 0,
            },
        ),
        (
            ingest.PAYMENT_OVERDUE,
            {
                "boss_event_id": "B3",
                "customer_id": customer,
                "account_id": "A1",
                "occurred_at": t,
                "invoice_id": "INV-X",
                "amount_overdue_fen": 999_900,
                "days_overdue": 95,
                "due_date": "2026-01-25",
            },
        ),
        (
            ingest.PAYMENT_FAILED,
            {
                "boss_event_id": "B4",
                "customer_id": customer,
                "account_id": "A1",
                "occurred_at": t,
                "attempted_at": t,
                "payment_id": "P1",
                "amount_fen": 100,
                "channel": "auto_debit",
                "reason": "insufficient_funds",
            },
        ),
        (
            ingest.RECHARGED,
            {
                **ids,
                "boss_event_id": "B5",
                "occurred_at": t,
                "recharged_at": t,
                "recharge_id": "R1",
                "amount_fen": 10_000,
                "channel": "alipay",
            },
        ),
        (
            ingest.PLAN_CHANGED,
            {
                **ids,
                "boss_event_id": "B6",
                "occurred_at": t,
                "from_plan_code": "5G-ULT-199",
                "plan": {"code": "4G-BASIC-39", "name": "4G畅聊套餐39元", "monthly_fee_fen": 3900},
            },
        ),
        (
            ingest.COLLECTION_STATUS_CHANGED,
            {
                "boss_event_id": "B7",
                "customer_id": customer,
                "account_id": "A1",
                "occurred_at": t,
                "status": "with_agency",
                "outstanding_fen": 999_900,
            },
        ),
        (
            ingest.TICKET_CREATED,
            {
                "ticket_id": "TT-LEAK",
                "customer_id": customer,
                "occurred_at": t,
                "ticket_type": "complaint",
                "category": "network_coverage",
                "title": "no signal",
                "priority": "high",
                "state": "acknowledged",
                "sla_due_at": t,
                "channel": "hotline",
            },
        ),
        (
            ingest.CONTACT_SENT,
            {
                "contact_id": "CT1",
                "customer_id": customer,
                "occurred_at": t,
                "campaign_id": "CMP1",
                "campaign_name": "retain",
                "channel": "sms",
            },
        ),
        (ingest.PORTED_OUT, {**ids, "boss_event_id": "B8", "occurred_at": t, "recipient_operator": "china_unicom"}),
    ]


async def test_nothing_after_the_snapshot_changes_a_training_row(store: Database) -> None:
    before = await _rows(store, until=SNAPSHOT + timedelta(days=90))
    assert len(before) > 20
    assert before[list(FEATURE_NAMES)].notna().to_numpy().any()
    async with store.sessions() as session:
        history = await read_history(session, until=SNAPSHOT + timedelta(days=90))
    lines = pd.DataFrame(history.lines).sort_values("subscription_id")
    open_now = lines[lines["closed_at"].isna()].iloc[0]
    customer, subscription = str(open_now["customer_id"]), str(open_now["subscription_id"])
    leaks = []
    for moment in (SNAPSHOT, SNAPSHOT + timedelta(hours=1), SNAPSHOT + timedelta(days=3)):
        leaks += _after(customer, subscription, moment)
    await ingest.load_history(store, leaks)

    after = await _rows(store, until=SNAPSHOT + timedelta(days=90))
    pd.testing.assert_frame_equal(before, after)

    row = after[after["customer_id"] == customer]
    async with store.sessions() as session:
        history = await read_history(session, until=SNAPSHOT + timedelta(days=90))
    label = labels(history, row, "churn", 60)
    lines = pd.DataFrame(history.lines)
    others = lines[(lines["customer_id"] == customer) & lines["closed_at"].isna()]
    assert label.tolist() == [1 if others.empty else 0]
    assert np.isfinite(row["tenure_months"].to_numpy()).all()


async def test_the_online_score_reads_what_a_training_row_reads(store: Database) -> None:
    """The online path reads one customer in one statement of its own; as of the snapshot it gives every customer
    the very row the training set has, even once the store knows what came after."""
    before = await _rows(store, until=SNAPSHOT + timedelta(days=90))
    first = before.iloc[0]
    async with store.sessions() as session:
        lines = pd.DataFrame((await read_history(session, until=SNAPSHOT)).lines)
    subscription = str(lines[lines["customer_id"] == first["customer_id"]]["subscription_id"].iloc[0])
    await ingest.load_history(store, _after(str(first["customer_id"]), subscription, SNAPSHOT))

    rates = RegionRates()
    online = pd.concat(
        [await features_now(store, str(cid), SNAPSHOT, rates) for cid in before["customer_id"]], ignore_index=True
    )
    pd.testing.assert_frame_equal(online, before)
