"""Scoring (评分): a customer online, or the whole base in batches, with the active model.

Online, the features are computed as of the request from the customer's rows in the store — the same code that
built the training rows — and the reasons are LightGBM's per-feature contributions (TreeSHAP) in words. In a batch,
every customer with a line open is scored; the stored score is replaced, and where the band moved (or the customer
is scored for the first time) the reasons are worked out and `churn.score.computed.v1` is published."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_churn import events
from crm_churn.domain.features import History, compute, describe
from crm_churn.domain.predictor import Predictor, Rows
from crm_churn.domain.store import FactKind
from crm_churn.domain.training_set import BAD_DEBT_STAGE, HISTORY_DAYS, read_customer_history, read_history
from crm_churn.models import Fact, Line, Profile, Score
from crm_kit.db import Database
from crm_kit.events import CloudEvent, Contracts
from crm_kit.outbox import stage

REASONS = 5


class UnknownCustomer(Exception):
    """The store knows no such customer, or the customer was erased."""


class NotScorable(Exception):
    """The customer has no line open: there is nothing left to lose (or to collect)."""


@dataclass
class Scored:
    customer_id: str
    kind: str
    score: Decimal
    risk_band: str
    model_version: str
    reasons: list[dict[str, Any]]
    scored_at: datetime
    features: dict[str, float | None]


def as_decimals(probability: np.ndarray) -> list[Decimal]:
    """Probabilities as decimals of 4 places (half up), without a binary float on the way to the database."""
    units = np.floor(np.clip(probability, 0.0, 1.0) * 10_000 + 0.5).astype(np.int64)
    return [Decimal(f"{u // 10_000}.{u % 10_000:04d}") for u in units.tolist()]


def reasons(contributions: np.ndarray, values: np.ndarray, features: Sequence[str]) -> list[dict[str, Any]]:
    """The features that moved this score most, largest push towards risk first; each contribution as its share of
    all the pushes (so −1..1, and the shares of all features' pushes add up to 1 in absolute value)."""
    total = float(np.abs(contributions).sum())
    if total == 0.0:
        return []
    top = np.argsort(-np.abs(contributions), kind="stable")[:REASONS]
    top = top[np.argsort(-contributions[top], kind="stable")]
    return [
        {
            "feature": features[i],
            "description": describe(features[i], float(values[i]))[:200],
            "contribution": round(float(contributions[i]) / total, 4),
        }
        for i in top
        if contributions[i] != 0.0
    ]


class RegionRates:
    """Port-outs per 1000 lines by region over the 30 days before a moment, kept a few minutes: the one feature
    that looks beyond the customer, the same for every customer of a region."""

    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self.ttl = ttl_seconds
        self._cached: tuple[float, datetime, dict[str, float]] | None = None

    async def at(self, db: Database, moment: datetime) -> dict[str, float]:
        cached = self._cached
        if (
            cached is not None
            and time.monotonic() - cached[0] < self.ttl
            and abs(cached[1] - moment) < timedelta(seconds=self.ttl)
        ):
            return cached[2]
        async with db.sessions() as session:
            rates = await region_rates(session, moment)
        self._cached = (time.monotonic(), moment, rates)
        return rates


async def region_rates(session: AsyncSession, moment: datetime) -> dict[str, float]:
    ported = await session.execute(
        select(Profile.region, func.count())
        .select_from(Fact)
        .join(Profile, Profile.customer_id == Fact.customer_id)
        .where(
            Fact.kind == FactKind.LINE_PORTED_OUT.value,
            Fact.occurred_at >= moment - timedelta(days=30),
            Fact.occurred_at < moment,
        )
        .group_by(Profile.region)
    )
    lines = await session.execute(
        select(Profile.region, func.count())
        .select_from(Line)
        .join(Profile, Profile.customer_id == Line.customer_id)
        .where(Line.activated_at < moment, or_(Line.closed_at.is_(None), Line.closed_at >= moment))
        .group_by(Profile.region)
    )
    open_by = {r: n for r, n in lines.all() if r is not None}
    return {r: 1000.0 * n / open_by[r] for r, n in ported.all() if r is not None and open_by.get(r)}


async def scoring_history(
    session: AsyncSession,
    now: datetime,
    rates: dict[str, float],
    *,
    customers: Sequence[str] | None = None,
    between: tuple[str, str] | None = None,
) -> History:
    """What scoring as of `now` reads of some customers: usage of the days the longest window reaches back over,
    every fact and line, and the regions' port-out rates of the base."""
    history = await read_history(
        session, until=now, customers=customers, between=between, since=now - timedelta(days=HISTORY_DAYS + 1)
    )
    history.region_port_outs = {(0, r): v for r, v in rates.items()}
    return history


async def features_now(db: Database, customer_id: str, now: datetime, rates: RegionRates) -> pd.DataFrame:
    """The customer's features as of `now` (one row), or why there are none."""
    history = await read_customer_history(db, customer_id, until=now, since=now - timedelta(days=HISTORY_DAYS + 1))
    if not len(history.profiles["customer_id"]):
        raise UnknownCustomer(f"No customer {customer_id} in the feature store")
    history.region_port_outs = {(0, r): v for r, v in (await rates.at(db, now)).items()}
    frame = compute(history, [now])
    if frame.empty:
        raise NotScorable(f"Customer {customer_id} has no line open")
    return frame


def score_matrix(predictor: Predictor, rows: Rows, *, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The batch's scoring step, vectorised: each row's calibrated probability and band."""
    probability = predictor.probability(rows, threads=threads)
    return probability, predictor.bands.of(probability)


def explain_rows(predictor: Predictor, frame: pd.DataFrame, scored_at: datetime, *, threads: int = 0) -> list[Scored]:
    """Scores with their reasons and inputs: TreeSHAP costs several predictions, so a batch explains only the
    customers whose band moved."""
    values = predictor.values(frame)
    probability, bands = score_matrix(predictor, values, threads=threads)
    scores = as_decimals(probability)
    contributions = predictor.contributions(values, threads=threads)
    return [
        Scored(
            customer_id=str(customer_id),
            kind=predictor.kind,
            score=scores[i],
            risk_band=str(bands[i]),
            model_version=predictor.version,
            reasons=reasons(contributions[i], values[i], predictor.features),
            scored_at=scored_at,
            features={
                name: (None if v != v else round(float(v), 4))
                for name, v in zip(predictor.features, values[i], strict=True)
            },
        )
        for i, customer_id in enumerate(frame["customer_id"])
    ]


async def score_customer(
    db: Database, predictor: Predictor, customer_id: str, now: datetime, rates: RegionRates
) -> Scored:
    frame = await features_now(db, customer_id, now, rates)
    if predictor.kind == "bad_debt" and float(frame["collection_stage"].iloc[0]) >= BAD_DEBT_STAGE:
        raise NotScorable(f"Customer {customer_id} is already with a collection agency or written off")
    return explain_rows(predictor, frame, now, threads=1)[0]


def published(s: Scored) -> CloudEvent:
    return events.score_computed(s.customer_id, s.kind, s.score, s.risk_band, s.model_version, s.reasons, s.scored_at)


def customer_batches(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


async def scorable_customers(session: AsyncSession, now: datetime) -> list[str]:
    """Everyone not erased with a line open at `now`, in id order."""
    rows = await session.scalars(
        select(Line.customer_id)
        .join(Profile, Profile.customer_id == Line.customer_id)
        .where(
            Profile.erased_at.is_(None),
            Line.activated_at < now,
            or_(Line.closed_at.is_(None), Line.closed_at >= now),
        )
        .distinct()
        .order_by(Line.customer_id)
    )
    return list(rows)


async def previous_bands(session: AsyncSession, kind: str, customers: Sequence[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Score.customer_id, Score.risk_band).where(and_(Score.kind == kind, Score.customer_id.in_(customers)))
    )
    return dict(rows.all())


async def upsert_scores(session: AsyncSession, scored: Sequence[Scored], *, reasons_too: bool) -> None:
    """Replace the customers' stored scores; without `reasons_too` a customer keeps the reasons it was last
    published with (its band did not move)."""
    if not scored:
        return
    rows = [
        {
            "customer_id": s.customer_id,
            "kind": s.kind,
            "score": s.score,
            "risk_band": s.risk_band,
            "model_version": s.model_version,
            "reasons": s.reasons,
            "scored_at": s.scored_at,
        }
        for s in scored
    ]
    dialect = session.bind.dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Score)
    kept = ("score", "risk_band", "model_version", "scored_at", *(("reasons",) if reasons_too else ()))
    statement = statement.on_conflict_do_update(
        index_elements=["customer_id", "kind"], set_={name: statement.excluded[name] for name in kept}
    )
    for start in range(0, len(rows), 2000):
        await session.execute(statement, rows[start : start + 2000])


@dataclass
class BatchResult:
    customers: int = 0
    band_changes: int = 0


async def score_base(
    db: Database,
    contracts: Contracts,
    predictor: Predictor,
    now: datetime,
    *,
    batch_size: int = 20_000,
    on_progress: Callable[[BatchResult], Awaitable[None]] | None = None,
) -> BatchResult:
    """Score everyone with a line open, `batch_size` customers per transaction; publish the band changes."""
    async with db.sessions.begin() as session:
        customers = await scorable_customers(session, now)
        rates = await region_rates(session, now)
    result = BatchResult()
    for chunk in customer_batches(customers, batch_size):
        async with db.sessions.begin() as session:
            history = await scoring_history(session, now, rates, between=(chunk[0], chunk[-1]))
            frame = compute(history, [now], customers=chunk)
            if predictor.kind == "bad_debt":
                frame = frame[frame["collection_stage"] < BAD_DEBT_STAGE].reset_index(drop=True)
            probability, bands = score_matrix(predictor, frame)
            ids = [str(c) for c in frame["customer_id"]]
            before = await previous_bands(session, predictor.kind, ids)
            moved = [i for i, (c, band) in enumerate(zip(ids, bands, strict=True)) if before.get(c) != band]
            moved_set = set(moved)
            kept = [i for i in range(len(ids)) if i not in moved_set]
            scores = as_decimals(probability[kept])
            await upsert_scores(
                session,
                [
                    Scored(ids[i], predictor.kind, score, str(bands[i]), predictor.version, [], now, {})
                    for i, score in zip(kept, scores, strict=True)
                ],
                reasons_too=False,
            )
            explained = explain_rows(predictor, frame.iloc[moved].reset_index(drop=True), now) if moved else []
            await upsert_scores(session, explained, reasons_too=True)
            await stage(session, contracts, [published(s) for s in explained])
            result.customers += len(ids)
            result.band_changes += len(moved)
        if on_progress is not None:
            await on_progress(result)
    return result
