"""Scores: one customer's risk as of now with its reasons, and the stored scores of the base, riskiest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import func, select

from crm_churn.api.access import Now, ScoreReader, problem_of
from crm_churn.domain import registry
from crm_churn.domain.predictor import ModelCorrupt
from crm_churn.domain.scoring import NotScorable, RegionRates, UnknownCustomer, score_customer
from crm_churn.models import Score
from crm_churn.schemas import Band, CustomerScore, Kind, StoredScore
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/churn/v1", tags=["Churn scores"], responses={401: {}, 403: {}})
CustomerId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The BOSS customer id")]


def _rates(request: Request) -> RegionRates:
    """The app's cache of regional port-out rates, made with the app."""
    return request.app.state.region_rates  # type: ignore[no-any-return]


@router.get(
    "/customers/{customer_id}/score",
    summary="The customer's churn (离网) or bad-debt (坏账) risk as of now, with its reasons",
    response_model=CustomerScore,
    responses={404: {}, 409: {}, 422: {}, 503: {}},
)
async def customer_score(
    customer_id: CustomerId,
    now: Now,
    request: Request,
    rt: RuntimeDep,
    _: ScoreReader,
    kind: Annotated[Kind, Query(description="churn (离网) or bad_debt (坏账)")] = "churn",
) -> JSONResponse:
    """Computed from the feature store at the moment of the request with the active model: nothing cached, so a
    complaint filed a minute ago already counts."""
    try:
        predictor = await registry.active_predictor(rt.db, kind)
        scored = await score_customer(rt.db, predictor, customer_id, now, _rates(request))
    except (registry.NoModel, ModelCorrupt, UnknownCustomer, NotScorable) as exc:
        raise problem_of(exc) from exc
    body = CustomerScore(
        customer_id=scored.customer_id,
        kind=kind,
        score=scored.score,
        risk_band=scored.risk_band,  # type: ignore[arg-type]
        model_version=scored.model_version,
        horizon_days=predictor.horizon_days,
        reasons=scored.reasons,  # type: ignore[arg-type]
        scored_at=scored.scored_at,
        features=scored.features,
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/scores",
    summary="Stored scores of the base, riskiest first (高危客户清单)",
    response_model=list[StoredScore],
    responses={422: {}},
)
async def stored_scores(
    session: DbSession,
    _: ScoreReader,
    kind: Kind = "churn",
    band: Band | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    where = [Score.kind == kind, *([Score.risk_band == band] if band else [])]
    total = await session.scalar(select(func.count()).select_from(Score).where(*where))
    rows = await session.scalars(
        select(Score).where(*where).order_by(Score.score.desc(), Score.customer_id).offset(offset).limit(limit)
    )
    body = [
        StoredScore(
            customer_id=s.customer_id,
            kind=s.kind,  # type: ignore[arg-type]
            score=s.score,
            risk_band=s.risk_band,  # type: ignore[arg-type]
            model_version=s.model_version,
            reasons=s.reasons,  # type: ignore[arg-type]
            scored_at=s.scored_at,
        ).model_dump(mode="json")
        for s in rows
    ]
    return JSONResponse(body, headers={"X-Total-Count": str(total or 0), "X-Result-Count": str(len(body))})
