"""The model registry (模型仓库): what was trained, how it did, its report; promotion and rollback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from crm_churn.api.access import ModelKeeper, Now, problem_of
from crm_churn.domain import registry
from crm_churn.domain.report import render_stored
from crm_churn.models import Model
from crm_churn.schemas import Kind, ModelDetail, ModelSummary
from crm_kit.errors import NotFound
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession

router = APIRouter(prefix="/churn/v1", tags=["Churn models"], responses={401: {}, 403: {}})
Version = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="e.g. churn-lgbm-2026.11.1")]


def summary(m: Model) -> ModelSummary:
    metrics = m.metrics or {}
    return ModelSummary(
        version=m.version,
        kind=m.kind,  # type: ignore[arg-type]
        status=m.status,  # type: ignore[arg-type]
        source=m.source,
        created_at=m.created_at,
        promoted_at=m.promoted_at,
        retired_at=m.retired_at,
        roc_auc=metrics.get("roc_auc"),
        pr_auc=metrics.get("pr_auc"),
        top_decile_lift=metrics.get("top_decile_lift"),
        brier=metrics.get("brier"),
    )


def detail(m: Model) -> ModelDetail:
    return ModelDetail(
        **summary(m).model_dump(),
        features=m.features,
        params=m.params,
        metrics=m.metrics,
        training=m.training,
        validation=m.validation,
        bands=m.bands,
        promotion=m.promotion,
        artifact_sha256=m.artifact_sha256,
    )


async def _model(session: DbSession, version: str) -> Model:
    model = await registry.get(session, version)
    if model is None:
        raise NotFound(f"No model {version} in the registry", field="version")
    return model


@router.get("/models", summary="Models in the registry, newest first", response_model=list[ModelSummary])
async def list_models(
    session: DbSession,
    _: ModelKeeper,
    kind: Kind | None = None,
    status: Annotated[str | None, Query(pattern="^(candidate|active|retired|rejected)$")] = None,
) -> JSONResponse:
    query = select(Model).order_by(Model.created_at.desc(), Model.version.desc())
    if kind:
        query = query.where(Model.kind == kind)
    if status:
        query = query.where(Model.status == status)
    return JSONResponse([summary(m).model_dump(mode="json") for m in await session.scalars(query)])


@router.get(
    "/models/{version}",
    summary="One model: features, parameters, metrics, training and validation sets",
    response_model=ModelDetail,
    responses={404: {}},
)
async def get_model(version: Version, session: DbSession, _: ModelKeeper) -> JSONResponse:
    return JSONResponse(detail(await _model(session, version)).model_dump(mode="json"))


@router.get(
    "/models/{version}/report",
    summary="The model report: ROC, lift, calibration and feature importance (模型评估报告)",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, 404: {}},
)
async def model_report(version: Version, session: DbSession, _: ModelKeeper) -> HTMLResponse:
    return HTMLResponse(render_stored(await _model(session, version)))


@router.post(
    "/models/{kind}/rollback",
    summary="Put back the model that was active before the current one",
    response_model=ModelDetail,
    responses={409: {}, 422: {}},
)
async def rollback(kind: Kind, session: DbSession, now: Now, _: ModelKeeper) -> JSONResponse:
    try:
        model = await registry.rollback(session, kind, now)
    except registry.NothingToRollBackTo as exc:
        raise problem_of(exc) from exc
    return JSONResponse(detail(model).model_dump(mode="json"))
