"""The churn API's shapes: scores with their reasons, models in the registry, scoring runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

Kind = Literal["churn", "bad_debt"]
Band = Literal["high", "medium", "low"]


class Reason(BaseModel):
    feature: str = Field(description="Feature name in the feature store, e.g. data_trend_30d")
    description: str = Field(description="What it means for this customer, in words an agent can say")
    contribution: float = Field(
        ge=-1,
        le=1,
        description="Its share of the push on the score (positive raises the risk); shares sum to 1 in size",
    )


class CustomerScore(BaseModel):
    """离网/坏账 risk of one customer, as of the request."""

    customer_id: str
    kind: Kind
    score: Decimal = Field(description="Calibrated probability within the model's horizon, 4 decimals")
    risk_band: Band = Field(description="high = 高危, medium = 中危, low = 低危")
    model_version: str
    horizon_days: int
    reasons: list[Reason]
    scored_at: datetime
    features: dict[str, float | None] = Field(description="The model's inputs for this customer (None: unknown)")


class StoredScore(BaseModel):
    """The score the last batch (or band change) left for a customer."""

    customer_id: str
    kind: Kind
    score: Decimal
    risk_band: Band
    model_version: str
    reasons: list[Reason]
    scored_at: datetime


class ModelSummary(BaseModel):
    version: str
    kind: Kind
    status: Literal["candidate", "active", "retired", "rejected"]
    source: str
    created_at: datetime
    promoted_at: datetime | None
    retired_at: datetime | None
    roc_auc: float | None
    pr_auc: float | None
    top_decile_lift: float | None
    brier: float | None


class ModelDetail(ModelSummary):
    features: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Validation metrics, curves and feature importance")
    training: dict[str, Any] = Field(description="Training window, snapshots, horizon, rows, positives, seconds")
    validation: dict[str, Any] = Field(description="The validation set: snapshots, rows, positives, fingerprint")
    bands: dict[str, float] = Field(description="Calibrated probability at which high and medium begin")
    promotion: dict[str, Any] | None = Field(description="The comparison that promoted or rejected it")
    artifact_sha256: str


class ScoringRunRequest(BaseModel):
    kind: Kind = "churn"


class ScoringRun(BaseModel):
    """A batch scoring of the whole base (全量评分)."""

    id: str
    kind: Kind
    model_version: str | None
    trigger: Literal["schedule", "request"]
    status: Literal["running", "completed", "failed"]
    started_at: datetime
    finished_at: datetime | None
    customers: int
    band_changes: int
    error: str | None
