"""Scores through the HTTP API on a store filled from the simulator and a model trained on it: the score with its
reasons, and the problem+json answers for an unknown customer, no model yet and a corrupt model; a batch run that
scores the base and publishes the bands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest_asyncio
from sqlalchemy import select, update

from crm_churn.api.access import clock
from crm_churn.app import create_app
from crm_churn.domain.ingest import boss_record_event, load_history
from crm_churn.domain.retrain import learn, training_set_from_store
from crm_churn.domain.training import TrainParams
from crm_churn.models import Model, Score
from crm_churn.settings import Settings
from crm_kit.db import Database, outbox_table
from crm_kit.presentation import SHANGHAI
from crm_kit.simulator import Population, Simulation
from crm_kit.testing import assert_problem, bearer, eventually, serve

NOW = datetime(2026, 10, 1, 9, tzinfo=SHANGHAI)
ANALYST = bearer("analyst-01", roles=("analyst",))
AGENT = bearer("agent-01", roles=("agent",))


@dataclass
class Scoring:
    http: httpx.AsyncClient
    db: Database
    customers: list[str]


@pytest_asyncio.fixture
async def scoring(churn_settings: Settings) -> AsyncIterator[Scoring]:
    """Nine simulated months of 600 customers in the store, a churn model trained on them and active."""
    app = create_app(churn_settings)

    async def fixed() -> datetime:
        return NOW

    app.dependency_overrides[clock] = fixed
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        db = Database(churn_settings.database_url)
        sim = Simulation(Population(customers=600, months=9))
        await load_history(db, [*(boss_record_event(r) for r in sim), *((e["type"], e["data"]) for e in sim.tickets)])
        training_set = await training_set_from_store(db, churn_settings, "churn", 12)
        outcome = await learn(db, training_set, NOW, TrainParams(num_threads=1))
        assert outcome.promoted
        still_here = [c for c, t in sim.truth.items() if t.churn_period is None]
        try:
            yield Scoring(http, db, still_here)
        finally:
            await db.dispose()


async def test_a_customer_is_scored_now_with_reasons_in_words(scoring: Scoring) -> None:
    customer = scoring.customers[0]
    r = await scoring.http.get(f"/churn/v1/customers/{customer}/score", headers=AGENT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == customer and body["kind"] == "churn"
    assert 0 <= float(body["score"]) <= 1 and body["risk_band"] in ("high", "medium", "low")
    assert body["model_version"].startswith("churn-lgbm-2026.10.")
    assert body["horizon_days"] == 60
    assert 1 <= len(body["reasons"]) <= 5
    contributions = [reason["contribution"] for reason in body["reasons"]]
    assert contributions == sorted(contributions, reverse=True)
    assert all(reason["description"] for reason in body["reasons"])
    assert body["features"]["lines_open"] >= 1


async def test_bad_requests_get_problems_not_500s(scoring: Scoring) -> None:
    assert_problem(await scoring.http.get("/churn/v1/customers/NOBODY/score", headers=AGENT), 404, "customer_id")
    no_model = await scoring.http.get(
        f"/churn/v1/customers/{scoring.customers[0]}/score", params={"kind": "bad_debt"}, headers=AGENT
    )
    assert assert_problem(no_model, 503, slug="model-unavailable")["reason"] == "not-trained"
    assert_problem(await scoring.http.get(f"/churn/v1/customers/{scoring.customers[0]}/score"), 401)
    assert_problem(await scoring.http.get("/churn/v1/models", headers=AGENT), 403)


async def test_a_corrupt_model_is_a_503_naming_it(scoring: Scoring) -> None:
    async with scoring.db.sessions.begin() as session:
        await session.execute(update(Model).values(artifact=b"not a model", artifact_sha256="0" * 64))
    r = await scoring.http.get(f"/churn/v1/customers/{scoring.customers[1]}/score", headers=AGENT)
    assert assert_problem(r, 503, slug="model-unavailable")["reason"] == "corrupt"


async def test_a_batch_run_scores_the_base_and_publishes_every_first_band(scoring: Scoring) -> None:
    r = await scoring.http.post("/churn/v1/scoring-runs", json={"kind": "churn"}, headers=ANALYST)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]

    async def finished() -> dict[str, object] | None:
        run = (await scoring.http.get(f"/churn/v1/scoring-runs/{run_id}", headers=ANALYST)).json()
        return run if run["status"] != "running" else None

    run = await eventually(finished, timeout=60)
    assert run["status"] == "completed", run
    async with scoring.db.sessions() as session:
        scores = (await session.scalars(select(Score))).all()
        published = (await session.execute(select(outbox_table.c.type))).scalars().all()
    assert run["customers"] == len(scores) > 0
    assert run["band_changes"] == len(scores)
    assert published.count("churn.score.computed.v1") == len(scores)
    listed = await scoring.http.get("/churn/v1/scores", params={"band": "high"}, headers=AGENT)
    assert listed.status_code == 200
    assert all(s["risk_band"] == "high" for s in listed.json())
