"""The model registry (模型仓库): every trained model with what it learnt from and how it did; one active model per
kind, the one that scores.

A candidate becomes active only when it beats the active model on the candidate's own validation set — both
scored on the same rows, so the comparison is fair — or when there is no active model. It is rejected otherwise
and stays in the registry with the comparison. A rollback puts back the model that was active before."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, String, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_churn.domain.predictor import Bands, Calibration, ModelCorrupt, Predictor, pack, unpack
from crm_churn.domain.training import Comparison, TrainedModel
from crm_churn.models import Model
from crm_kit.db import Database
from crm_kit.presentation import SHANGHAI
from crm_kit.sqljson import document, loads, rows_json

CANDIDATE, ACTIVE, RETIRED, REJECTED = "candidate", "active", "retired", "rejected"


class NoModel(Exception):
    """No model of the kind is active: none has been trained and promoted yet."""


class NothingToRollBackTo(Exception):
    """No model of the kind was active before the current one."""


async def next_version(session: AsyncSession, kind: str, now: datetime) -> str:
    """`<kind>-lgbm-YYYY.MM.<n>`: the n-th model of the kind trained that month (Shanghai calendar)."""
    month = now.astimezone(SHANGHAI).strftime("%Y.%m")
    prefix = f"{kind}-lgbm-{month}."
    count = await session.scalar(select(func.count()).select_from(Model).where(Model.version.like(f"{prefix}%")))
    return f"{prefix}{(count or 0) + 1}"


def register(session: AsyncSession, trained: TrainedModel, now: datetime) -> Model:
    """Keep the trained model as a candidate; the caller decides on it (`decide`)."""
    artifact, digest = pack(trained.predictor.booster)
    p = trained.predictor
    model = Model(
        version=p.version,
        kind=p.kind,
        status=CANDIDATE,
        algorithm="lightgbm",
        source=str(trained.training.get("source", "feature_store")),
        created_at=now,
        features=list(p.features),
        params=trained.params,
        metrics={**trained.metrics, "importance": trained.importance, "curves": trained.curves},
        training={**trained.training, "seconds": round(trained.seconds, 3)},
        validation=trained.validation,
        calibration=p.calibration.wire(),
        bands=p.bands.wire(),
        promotion=None,
        artifact=artifact,
        artifact_sha256=digest,
    )
    session.add(model)
    return model


async def active(session: AsyncSession, kind: str) -> Model | None:
    return await session.scalar(select(Model).where(Model.kind == kind, Model.status == ACTIVE))


async def get(session: AsyncSession, version: str) -> Model | None:
    return await session.get(Model, version)


@dataclass
class _Cached:
    sha256: str
    predictor: Predictor


PARSED_MODELS = 4
_PREDICTORS: OrderedDict[str, _Cached] = OrderedDict()
"""Boosters parsed once per process, the few used last (the active ones and the one just replaced): a stored model
never changes, its checksum says so."""


def _recall(version: str, sha256: str) -> Predictor | None:
    cached = _PREDICTORS.get(version)
    if cached is None or cached.sha256 != sha256:
        return None
    _PREDICTORS.move_to_end(version)
    return cached.predictor


def predictor_of(model: Model) -> Predictor:
    """The model ready to score; `ModelCorrupt` when its stored booster cannot be trusted or read."""
    known = _recall(model.version, model.artifact_sha256)
    if known is not None:
        return known
    booster = unpack(model.artifact, model.artifact_sha256)
    if booster.num_feature() != len(model.features):
        raise ModelCorrupt(
            f"the stored model reads {booster.num_feature()} features, the registry lists {len(model.features)}"
        )
    predictor = Predictor(
        version=model.version,
        kind=model.kind,
        features=list(model.features),
        booster=booster,
        calibration=Calibration.from_wire(model.calibration),
        bands=Bands(**model.bands),
        horizon_days=int(model.training.get("horizon_days", 0)),
    )
    _PREDICTORS[model.version] = _Cached(model.artifact_sha256, predictor)
    while len(_PREDICTORS) > PARSED_MODELS:
        _PREDICTORS.popitem(last=False)
    return predictor


@cache
def _active_query() -> Select[tuple[str]]:
    """The active model of a kind, its version and checksum: built once, run by `Database.read_one`."""
    return document(
        active=rows_json(
            select(Model.version, Model.artifact_sha256).where(
                Model.kind == bindparam("kind", type_=String()), Model.status == ACTIVE
            )
        )
    )


async def active_predictor(db: Database, kind: str) -> Predictor:
    """The active model of `kind` ready to score. While this process holds it parsed, only its version and
    checksum are read (a promotion or rollback shows at the next call); `NoModel` when none is active."""
    found = loads(await db.read_one(_active_query(), {"kind": kind}))["active"]
    if not found:
        raise NoModel(f"No {kind} model is active yet: train one (crm train --kind {kind})")
    version, sha256 = found[0]["version"], found[0]["artifact_sha256"]
    known = _recall(version, sha256)
    if known is not None:
        return known
    async with db.sessions() as session:
        return predictor_of(await session.get_one(Model, version))


def comparison_record(comparison: Comparison | None, incumbent: str | None, now: datetime) -> dict[str, Any]:
    if comparison is None:
        return {"against": None, "decided_at": now.isoformat(), "reason": "no model of this kind was active"}
    return {
        "against": incumbent,
        "decided_at": now.isoformat(),
        "candidate_auc": comparison.candidate_auc,
        "incumbent_auc": comparison.incumbent_auc,
        "comparable": comparison.comparable,
        "better": comparison.better,
        "reason": comparison.reason,
    }


async def decide(
    session: AsyncSession, candidate: Model, comparison: Comparison | None, incumbent: Model | None, now: datetime
) -> bool:
    """Promote `candidate` when there is no incumbent or it beat the incumbent; reject it otherwise. True when
    promoted."""
    candidate.promotion = comparison_record(comparison, incumbent.version if incumbent else None, now)
    if incumbent is not None and (comparison is None or not comparison.better):
        candidate.status = REJECTED
        return False
    if incumbent is not None:
        incumbent.status = RETIRED
        incumbent.retired_at = now
        await session.flush()
    candidate.status = ACTIVE
    candidate.promoted_at = now
    await session.flush()
    return True


async def rollback(session: AsyncSession, kind: str, now: datetime) -> Model:
    """Retire the active model and make active again the one it replaced (the latest retired)."""
    current = await active(session, kind)
    previous = await session.scalar(
        select(Model)
        .where(Model.kind == kind, Model.status == RETIRED, Model.promoted_at.is_not(None))
        .order_by(Model.retired_at.desc(), Model.promoted_at.desc())
        .limit(1)
    )
    if previous is None:
        raise NothingToRollBackTo(f"no {kind} model was active before {current.version if current else 'now'}")
    if current is not None:
        current.status = RETIRED
        current.retired_at = now
        await session.flush()
    previous.status = ACTIVE
    previous.promoted_at = now
    previous.retired_at = None
    previous.promotion = {
        **(previous.promotion or {}),
        "rolled_back_at": now.isoformat(),
        "replaced": current.version if current else None,
    }
    await session.flush()
    return previous
