"""Model quality on simulated data with a known generating process: the BOSS simulator's churn is driven by falling
use, bill shock, contract end, payment trouble, unresolved complaints, network trouble and competitors' port-out
offers (the last two hidden), with noise. Through the whole pipeline — events into the feature store, monthly
point-in-time snapshots, a time-split LightGBM — the model has to find that signal: validation ROC-AUC ≥ 0.85 and
top-decile lift ≥ 4 on the latest snapshot, which it never saw."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from crm_churn.domain import ingest
from crm_churn.domain.training import TrainParams, train
from crm_churn.domain.training_set import build
from crm_kit.db import Database, upgrade_async
from crm_kit.simulator import Population, Simulation

MIGRATIONS = Path(__file__).resolve().parent.parent / "crm_churn" / "migrations"
CUSTOMERS = 6000

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("CRM_TEST_DATABASE_URL")),
    reason="the model's quality does not depend on the database; the store's PostgreSQL path is tested by "
    "test_ingest and test_point_in_time",
)


@pytest.mark.timeout(600)
async def test_the_churn_model_finds_the_simulators_signal(database_url: Callable[[str], Awaitable[str]]) -> None:
    url = await database_url("churn")
    await upgrade_async(url, MIGRATIONS)
    db = Database(url)
    try:
        sim = Simulation(Population(customers=CUSTOMERS, months=12))
        events = [ingest.boss_record_event(r) for r in sim]
        await ingest.load_history(db, [*events, *((e["type"], e["data"]) for e in sim.tickets)])
        async with db.sessions() as session:
            training_set = await build(session, "churn", horizon_days=60, snapshot_hour=6, months=12)
    finally:
        await db.dispose()
    model = train(training_set, TrainParams(num_threads=1), version="churn-lgbm-test.1")
    metrics = {k: v for k, v in model.metrics.items() if k in ("roc_auc", "top_decile_lift", "rows", "positives")}
    assert metrics["positives"] >= 100, metrics
    assert metrics["roc_auc"] >= 0.85, metrics
    assert metrics["top_decile_lift"] >= 4, metrics
