"""Batch scoring runs (全量评分) on request, and what each run did."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from crm_churn.api.access import ModelKeeper, Now, problem_of
from crm_churn.domain import batch, registry
from crm_churn.models import ScoringRun as Run
from crm_churn.schemas import ScoringRun, ScoringRunRequest
from crm_kit.errors import NotFound
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/churn/v1", tags=["Churn scoring runs"], responses={401: {}, 403: {}})
RunId = Annotated[str, Path(max_length=32, pattern=r"^[A-Za-z0-9]+$")]


def shape(run: Run) -> dict[str, object]:
    return ScoringRun.model_validate(run, from_attributes=True).model_dump(mode="json")


@router.post(
    "/scoring-runs",
    summary="Score the whole base now with the active model",
    status_code=202,
    response_model=ScoringRun,
    responses={422: {}, 503: {}},
)
async def start_run(
    body: ScoringRunRequest, session: DbSession, rt: RuntimeDep, now: Now, _: ModelKeeper
) -> JSONResponse:
    """Answers at once; the run goes on in the service and its row tells how far it got."""
    model = await registry.active(session, body.kind)
    if model is None:
        raise problem_of(registry.NoModel(f"No {body.kind} model is active yet: train one first"))
    run = batch.new_run(body.kind, "request", now, model.version)
    session.add(run)
    await session.commit()
    rt.tasks.append(asyncio.create_task(batch.execute(rt.db, rt.contracts, run.id, now), name=f"scoring-{run.id}"))
    return JSONResponse(shape(run), status_code=202, headers={"Location": f"/churn/v1/scoring-runs/{run.id}"})


@router.get("/scoring-runs", summary="Scoring runs, newest first", response_model=list[ScoringRun])
async def list_runs(session: DbSession, _: ModelKeeper) -> JSONResponse:
    runs = await session.scalars(select(Run).order_by(Run.started_at.desc()).limit(100))
    return JSONResponse([shape(r) for r in runs])


@router.get("/scoring-runs/{run_id}", summary="One scoring run", response_model=ScoringRun, responses={404: {}})
async def get_run(run_id: RunId, session: DbSession, _: ModelKeeper) -> JSONResponse:
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFound(f"No scoring run {run_id}", field="run_id")
    return JSONResponse(shape(run))
