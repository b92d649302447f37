"""The churn service measured as a data-science team would: the feature store filled from the simulator, the
training set built from it, a model trained on 1M subscribers' 12 months, the whole base scored beside a bare
`lightgbm.Booster.predict` on the same matrix, and the online score over real HTTP.

- Store: `--churn-simulated` customers × 12 months from the BOSS simulator (usage, bills, payments, lines, and the
  complaints as ticket events) loaded with the history loader, then the training set built from the store
  (point-in-time features for every monthly snapshot with 120 days of history and a passed 60-day horizon).
- Training at scale: the simulated customers' rows resampled with new ids (each simulated customer stands for
  several subscribers; the rows keep the simulator's distribution) up to `--churn-subscribers` subscribers per
  snapshot, every usable snapshot of the 12 months; trained with the service's defaults in a process of its own,
  whose peak RSS is the memory figure.
- Batch scoring: the latest snapshot's matrix of all subscribers, scored by the service's scoring step (calibrated
  probability, band, 4-place decimal per customer) and by a bare `Booster.predict` of the same model, in the same
  run; and the whole batch through the store (features, scores, upserts, outbox) on the simulated base.
- Online: `GET /churn/v1/customers/{id}/score` on the simulated store, one client, after a warm-up.
- With `--postgres`: the store, its batch and the online score again on a fresh PostgreSQL database.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import resource
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import lightgbm as lgb
import numpy as np
import pandas as pd

from crm_churn.api.access import clock
from crm_churn.app import create_app
from crm_churn.domain import ingest, registry
from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.predictor import Bands, Calibration, Predictor
from crm_churn.domain.retrain import learn, training_set_from_store
from crm_churn.domain.scoring import scorable_customers, score_base, score_matrix
from crm_churn.domain.training import TrainParams, train
from crm_churn.settings import Settings
from crm_kit.broker import EmbeddedBroker
from crm_kit.db import Database, upgrade_async
from crm_kit.events import load_contracts
from crm_kit.presentation import SHANGHAI
from crm_kit.settings import KafkaSettings
from crm_kit.simulator import Population, Simulation
from crm_kit.testing import bearer, serve
from tests.bench_customer import create_postgres, drop_postgres

MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "churn" / "crm_churn" / "migrations"
MONTHS = 12
ONLINE_REQUESTS = 400
SETUP = (
    "- setup: SQLite store, and a fresh PostgreSQL database for the rows marked so; the BOSS simulator's customers × "
    "12 months loaded with the history loader; training and "
    "scoring matrices resampled from them to the subscriber count; LightGBM with the service's defaults; the online "
    "score over HTTP to the service under uvicorn in the bench process, one aiohttp client (httpx costs the shared "
    "loop a millisecond a request of its own)"
)


def _rss_mb(kilobytes: int) -> float:
    return kilobytes / 1024


def _grow(ts: TrainingSet, subscribers: int, seed: int = 7) -> TrainingSet:
    """Each snapshot's rows drawn with replacement up to `subscribers` rows, each draw a new subscriber."""
    rng = np.random.default_rng(seed)
    picks = []
    for day in np.unique(ts.as_of):
        rows = np.flatnonzero(ts.as_of == day)
        picks.append(rng.choice(rows, size=subscribers, replace=True))
    chosen = np.concatenate(picks)
    return TrainingSet(
        features=ts.features.iloc[chosen].reset_index(drop=True),
        label=ts.label[chosen],
        customer_id=np.asarray([f"S{i:08d}" for i in range(len(chosen))], dtype=object),
        as_of=ts.as_of[chosen],
        source=ts.source,
        kind=ts.kind,
        horizon_days=ts.horizon_days,
    )


def _train_apart(path: str, subscribers: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a process of its own: grow the set, train, report the time and the model text."""
    saved = np.load(path, allow_pickle=True)
    base = TrainingSet(
        features=pd.DataFrame(saved["features"], columns=list(saved["names"])),
        label=saved["label"],
        customer_id=saved["customer_id"],
        as_of=saved["as_of"],
        source="feature_store",
        kind="churn",
        horizon_days=60,
    )
    grown = _grow(base, subscribers)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    model = train(grown, TrainParams(), version="bench")
    seconds = time.perf_counter() - started
    queue.put(
        {
            "rows": grown.rows,
            "positives": grown.positives,
            "seconds": seconds,
            "rss_before_mb": _rss_mb(before),
            "auc": model.metrics["roc_auc"],
            "best_iteration": model.metrics["best_iteration"],
            "model": model.predictor.booster.model_to_string(),
            "calibration": model.predictor.calibration.wire(),
            "bands": model.predictor.bands.wire(),
            "features": model.predictor.features,
        }
    )


async def _fill(db: Database, customers: int) -> tuple[int, float]:
    sim = Simulation(Population(customers=customers, months=MONTHS))
    events = [ingest.boss_record_event(r) for r in sim]
    events += [(e["type"], e["data"]) for e in sim.tickets]
    started = time.perf_counter()
    await ingest.load_history(db, events)
    return len(events), time.perf_counter() - started


async def _store(url: str, simulated: int, label: str) -> tuple[Database, Settings, TrainingSet, dict[str, str]]:
    """A fresh store at `url` filled by the simulator, and the training set built from it."""
    results: dict[str, str] = {}
    await upgrade_async(url, MIGRATIONS)
    settings = Settings(database_url=url, log_level="WARNING", batch_score_hour=None)
    db = Database(url)
    count, seconds = await _fill(db, simulated)
    results[f"feature store load (history loader) [{label}]"] = (
        f"{count:,} events of {simulated:,} customers × {MONTHS} months in {seconds:.0f} s ({count / seconds:,.0f}/s)"
    )
    started = time.perf_counter()
    base = await training_set_from_store(db, settings, "churn", MONTHS)
    seconds = time.perf_counter() - started
    results[f"training set from the store [{label}]"] = (
        f"{base.rows:,} rows ({len(np.unique(base.as_of))} snapshots, {base.positives:,} churners) in {seconds:.1f} s "
        f"({base.rows / seconds:,.0f} rows/s)"
    )
    return db, settings, base, results


async def measure(folder: Path, subscribers: int, simulated: int, postgres: str | None = None) -> dict[str, str]:
    """Every figure on a SQLite store; the store's own figures (load, training set, batch and online scoring) again
    on a fresh database of the `postgres` server when given."""
    db, settings, base, results = await _store(f"sqlite+aiosqlite:///{folder / 'churn.db'}", simulated, "SQLite")
    snapshots = len(np.unique(base.as_of))

    saved = folder / "base.npz"
    np.savez(
        saved,
        features=base.features.to_numpy(dtype=np.float32),
        names=np.asarray(base.features.columns),
        label=base.label,
        customer_id=base.customer_id,
        as_of=base.as_of,
    )
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_train_apart, args=(str(saved), subscribers, queue))
    child.start()
    trained = queue.get()
    child.join()
    peak = _rss_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    results[f"training, {subscribers:,} subscribers × {snapshots} monthly snapshots of {MONTHS} months"] = (
        f"{trained['rows']:,} rows × {len(trained['features'])} features: {trained['seconds']:.0f} s "
        f"({trained['best_iteration']} trees), peak RSS {peak:,.0f} MB (process {trained['rss_before_mb']:,.0f} MB "
        f"before training); validation AUC {trained['auc']:.3f}"
    )

    predictor = Predictor(
        version="bench",
        kind="churn",
        features=trained["features"],
        booster=lgb.Booster(model_str=trained["model"]),
        calibration=Calibration.from_wire(trained["calibration"]),
        bands=Bands(**trained["bands"]),
    )
    latest = base.subset(base.as_of == base.as_of.max())
    grown = _grow(latest, subscribers, seed=11)
    frame = grown.features.copy()
    frame.insert(0, "customer_id", grown.customer_id)
    matrix = predictor.matrix(frame)
    bare = ours = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        predictor.booster.predict(matrix)
        bare = min(bare, time.perf_counter() - started)
        started = time.perf_counter()
        score_matrix(predictor, frame)
        ours = min(ours, time.perf_counter() - started)
    results[f"batch scoring step, {subscribers:,} subscribers"] = (
        f"{subscribers / ours:,.0f}/s (model columns, predict, calibration, band) vs bare Booster.predict "
        f"{subscribers / bare:,.0f}/s on the same matrix: {bare / ours:.0%} of it (goal ≥ 50%)"
    )

    results.update(await _service(db, settings, base, simulated, "SQLite"))
    await db.dispose()
    if postgres:
        url = await create_postgres(postgres, f"crm_bench_churn_{os.getpid()}")
        try:
            db, settings, base, found = await _store(url, simulated, "PostgreSQL")
            results.update(found)
            results.update(await _service(db, settings, base, simulated, "PostgreSQL"))
            await db.dispose()
        finally:
            await drop_postgres(url)
    return results


async def _service(db: Database, settings: Settings, base: TrainingSet, simulated: int, label: str) -> dict[str, str]:
    """The model trained on the simulated store the way the service trains; the whole base scored through the
    store; then the online score over HTTP."""
    results: dict[str, str] = {}
    end = datetime(2027, 1, 1, 6, tzinfo=SHANGHAI)
    outcome = await learn(db, base, end - timedelta(days=1))
    async with db.sessions() as session:
        predictor = registry.predictor_of(await registry.active(session, "churn"))
        customers = await scorable_customers(session, end)
    started = time.perf_counter()
    batch = await score_base(db, load_contracts(settings.contracts_dir.resolve()), predictor, end)
    seconds = time.perf_counter() - started
    results[f"batch scoring through the store, {simulated:,} customers [{label}]"] = (
        f"{batch.customers:,} scored in {seconds:.1f} s ({batch.customers / seconds:,.0f}/s: history read, features, "
        f"scores, upserts, {batch.band_changes:,} band changes published with reasons); model "
        f"{outcome.trained.predictor.version}, AUC {outcome.trained.metrics['roc_auc']:.3f}"
    )

    with EmbeddedBroker() as broker:
        app = create_app(settings.model_copy(update={"kafka": KafkaSettings(bootstrap=broker.bootstrap)}))

        async def fixed() -> datetime:
            return end

        app.dependency_overrides[clock] = fixed
        async with serve(app) as url, aiohttp.ClientSession(base_url=url, headers=bearer()) as http:
            sample = random.Random(3).choices(customers, k=ONLINE_REQUESTS + 50)
            latencies = []
            for i, customer in enumerate(sample):
                started = time.perf_counter()
                async with http.get(f"/churn/v1/customers/{customer}/score") as r:
                    body = await r.read()
                elapsed = time.perf_counter() - started
                if r.status != 200:
                    raise RuntimeError(f"online score failed: {r.status} {body.decode()}")
                if i >= 50:
                    latencies.append(elapsed)
    cuts = statistics.quantiles(latencies, n=100)
    results[f"online score, one client [{label}]"] = (
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms "
        f"over {ONLINE_REQUESTS} requests (goal p99 < 20 ms)"
    )
    return results
