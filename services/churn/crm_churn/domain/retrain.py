"""Train, register, decide: a model is learnt from the feature store (or a file), kept in the registry, and
promoted only if it beats the active model on the candidate's validation set."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from crm_churn.domain import registry
from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.predictor import ModelCorrupt
from crm_churn.domain.training import Comparison, TrainedModel, TrainParams, compare, train
from crm_churn.domain.training_set import build
from crm_churn.settings import Settings
from crm_kit.db import Database


@dataclass
class Outcome:
    trained: TrainedModel
    promoted: bool
    comparison: Comparison | None
    incumbent: str | None


def horizon_of(settings: Settings, kind: str) -> int:
    return settings.churn_horizon_days if kind == "churn" else settings.bad_debt_horizon_days


async def training_set_from_store(db: Database, settings: Settings, kind: str, months: int) -> TrainingSet:
    async with db.sessions.begin() as session:
        return await build(
            session, kind, horizon_days=horizon_of(settings, kind), snapshot_hour=settings.snapshot_hour, months=months
        )


async def learn(db: Database, training_set: TrainingSet, now: datetime, params: TrainParams | None = None) -> Outcome:
    """Train on `training_set` (in a worker thread: it takes seconds to minutes), register the model and decide."""
    async with db.sessions.begin() as session:
        version = await registry.next_version(session, training_set.kind, now)
    trained = await asyncio.to_thread(train, training_set, params, version=version)
    async with db.sessions.begin() as session:
        incumbent = await registry.active(session, training_set.kind)
        comparison = None
        if incumbent is not None:
            try:
                current = registry.predictor_of(incumbent)
            except ModelCorrupt as exc:
                comparison = Comparison(
                    candidate_auc=float(trained.metrics["roc_auc"]),
                    incumbent_auc=None,
                    comparable=False,
                    better=True,
                    reason=f"the active model cannot be read ({exc}); the candidate replaces it",
                )
            else:
                comparison = await asyncio.to_thread(compare, trained.predictor, current, trained.validation_set)
        candidate = registry.register(session, trained, now)
        await session.flush()
        promoted = await registry.decide(session, candidate, comparison, incumbent, now)
    return Outcome(trained, promoted, comparison, incumbent.version if incumbent else None)
