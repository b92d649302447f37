"""Batch scoring runs (全量评分): on request or every day at the set hour, each recorded with what it did."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta

from crm_churn.domain import registry
from crm_churn.domain.dataset import KINDS
from crm_churn.domain.predictor import ModelCorrupt
from crm_churn.domain.scoring import BatchResult, score_base
from crm_churn.models import ScoringRun
from crm_kit.db import Database, utcnow
from crm_kit.events import Contracts
from crm_kit.presentation import SHANGHAI

log = logging.getLogger(__name__)


def new_run(kind: str, trigger: str, now: datetime, model_version: str | None) -> ScoringRun:
    return ScoringRun(
        id=f"SR{now.astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.token_hex(3).upper()}",
        kind=kind,
        model_version=model_version,
        trigger=trigger,
        status="running",
        started_at=now,
        customers=0,
        band_changes=0,
    )


async def execute(db: Database, contracts: Contracts, run_id: str, now: datetime) -> None:
    """Score the base with the model the run names; the run row follows the progress and ends completed or failed
    with the reason."""

    async def progress(result: BatchResult) -> None:
        async with db.sessions.begin() as session:
            run = await session.get(ScoringRun, run_id)
            if run is not None:
                run.customers, run.band_changes = result.customers, result.band_changes

    try:
        async with db.sessions.begin() as session:
            run = await session.get(ScoringRun, run_id)
            if run is None or run.model_version is None:
                raise registry.NoModel(f"scoring run {run_id} names no model")
            model = await registry.get(session, run.model_version)
            if model is None:
                raise registry.NoModel(f"model {run.model_version} is not in the registry")
            predictor = registry.predictor_of(model)
        result = await score_base(db, contracts, predictor, now, on_progress=progress)
        await _finish(db, run_id, "completed", None, result)
    except (registry.NoModel, ModelCorrupt) as exc:
        await _finish(db, run_id, "failed", str(exc), None)
    except Exception as exc:
        log.exception("scoring run %s failed", run_id)
        await _finish(db, run_id, "failed", f"{type(exc).__name__}: {exc}"[:500], None)


async def _finish(db: Database, run_id: str, status: str, error: str | None, result: BatchResult | None) -> None:
    async with db.sessions.begin() as session:
        run = await session.get(ScoringRun, run_id)
        if run is None:
            return
        run.status, run.error, run.finished_at = status, error, utcnow()
        if result is not None:
            run.customers, run.band_changes = result.customers, result.band_changes


def next_daily(now: datetime, hour: int) -> datetime:
    """The next `hour`:00 in Shanghai after `now`."""
    local = now.astimezone(SHANGHAI)
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at > local else at + timedelta(days=1)


async def run_schedule(db: Database, contracts: Contracts, hour: int) -> None:
    """Every day at `hour`, a run per kind that has an active model."""
    while True:
        now = utcnow()
        await asyncio.sleep((next_daily(now, hour) - now).total_seconds())
        for kind in KINDS:
            started = utcnow()
            async with db.sessions.begin() as session:
                model = await registry.active(session, kind)
                if model is None:
                    continue
                run = new_run(kind, "schedule", started, model.version)
                session.add(run)
            await execute(db, contracts, run.id, started)
