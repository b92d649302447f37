"""What ops and the business watch (Prometheus): the active models' validation metrics, the base by risk band, how
fresh the scores and the feature store are — for alerts on an AUC drop or scores gone stale."""

from __future__ import annotations

from prometheus_client import Gauge
from sqlalchemy import func, select

from crm_churn.domain.dataset import KINDS
from crm_churn.domain.predictor import BANDS
from crm_churn.models import Fact, Model, Score, ScoringRun
from crm_kit.db import Database

METRICS = ("roc_auc", "pr_auc", "top_decile_lift", "brier")
MODEL_METRIC = {
    name: Gauge(f"crm_churn_model_{name}", f"Validation {name} of the active model; NaN when none", ["kind"])
    for name in METRICS
}
MODEL_INFO = Gauge("crm_churn_model_info", "The active model of each kind (value 1)", ["kind", "version"])
MODEL_PROMOTED = Gauge("crm_churn_model_promoted_timestamp_seconds", "When the active model was promoted", ["kind"])
SCORES = Gauge("crm_churn_scores", "Customers by current risk band (高危/中危/低危)", ["kind", "band"])
LAST_SCORING = Gauge(
    "crm_churn_last_scoring_timestamp_seconds", "When the last completed batch scoring finished; 0 if never", ["kind"]
)
STORE_LATEST = Gauge(
    "crm_churn_feature_store_latest_event_timestamp_seconds", "Time of the newest fact in the feature store; 0 if empty"
)


async def refresh(db: Database) -> None:
    async with db.sessions() as session:
        active = {m.kind: m for m in await session.scalars(select(Model).where(Model.status == "active"))}
        bands = dict(
            ((kind, band), n)
            for kind, band, n in (
                await session.execute(
                    select(Score.kind, Score.risk_band, func.count()).group_by(Score.kind, Score.risk_band)
                )
            ).all()
        )
        finished = dict(
            (
                await session.execute(
                    select(ScoringRun.kind, func.max(ScoringRun.finished_at))
                    .where(ScoringRun.status == "completed")
                    .group_by(ScoringRun.kind)
                )
            ).all()
        )
        latest = await session.scalar(select(func.max(Fact.occurred_at)))
    MODEL_INFO.clear()
    for kind in KINDS:
        model = active.get(kind)
        for name in METRICS:
            value = (model.metrics or {}).get(name) if model else None
            MODEL_METRIC[name].labels(kind=kind).set(float(value) if value is not None else float("nan"))
        if model is not None:
            MODEL_INFO.labels(kind=kind, version=model.version).set(1)
            MODEL_PROMOTED.labels(kind=kind).set(model.promoted_at.timestamp() if model.promoted_at else 0)
        for band in BANDS:
            SCORES.labels(kind=kind, band=band).set(bands.get((kind, band), 0))
        LAST_SCORING.labels(kind=kind).set(finished[kind].timestamp() if finished.get(kind) else 0)
    STORE_LATEST.set(latest.timestamp() if latest else 0)
