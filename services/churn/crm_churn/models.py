"""Tables the churn service owns: the feature store (what it learnt from events, kept with the time each thing
happened so a training row can be rebuilt as of any past day), the model registry and the scores.

The store is append-only facts plus daily usage per line; features are computed from it as of a moment, never
kept as current values, so a snapshot taken in the past sees only what had happened by then (point-in-time)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, LargeBinary, MetaData, Numeric, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import NAMING, BigId, UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Profile(Base):
    """The customer as the churn service knows it (客户): type and region, from customer.profile and activations."""

    __tablename__ = "profile"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_type: Mapped[str | None] = mapped_column(String(16), doc="individual or organization (政企)")
    region: Mapped[str | None] = mapped_column(String(16), index=True, doc="region/city code, as the BOSS gives it")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="pseudonymised: no longer scored")
    merged_into: Mapped[str | None] = mapped_column(String(64))


class Line(Base):
    """A subscription (号码/订户) of a customer: when it opened and closed, and how it was opened."""

    __tablename__ = "line"

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    activated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payment_mode: Mapped[str] = mapped_column(String(16), doc="prepaid or postpaid")
    contract_end: Mapped[date | None] = mapped_column(Date, doc="合约到期日, None without a contract")
    dealer_code: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    close_kind: Mapped[str | None] = mapped_column(String(16), doc="terminated or ported_out (携号转网)")


class UsageDay(Base):
    """One line's usage on one day (Asia/Shanghai calendar), as its newest BOSS summary gives it.

    Kept per line, not summed per customer, because a corrected summary for the same line and day replaces the
    earlier one (the contract's figures are day totals): only a per-line row can be replaced. Features sum the
    lines of a customer's day when read; the key leads with customer and day so those reads scan the index."""

    __tablename__ = "usage_day"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    voice_minutes: Mapped[int] = mapped_column(Integer, default=0)
    sms_count: Mapped[int] = mapped_column(Integer, default=0)
    data_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    roaming_mb: Mapped[int] = mapped_column(BigInteger, default=0, doc="data used while roaming (漫游)")
    roaming_lines: Mapped[int] = mapped_column(
        Integer, default=0, doc="1 if the line roamed that day, else 0: summed per customer, the lines that roamed"
    )
    charged_fen: Mapped[int] = mapped_column(BigInteger, default=0, doc="usage charged beyond the plan (套外)")


class Fact(Base):
    """Something that happened to a customer, at the time it happened: a line opened or closed, a plan changed, a
    bill, a payment, a recharge, a ticket, a campaign contact.

    `kind` names it (see `domain.store.FactKind`); `amount_fen` is money, `quantity` a count or score, `detail` a
    short code (ticket category, channel, collection status)."""

    __tablename__ = "fact"
    __table_args__ = (
        Index("ix_fact_customer_occurred", "customer_id", "occurred_at"),
        Index("ix_fact_kind_occurred", "kind", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    quantity: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(String(64), doc="the subscription, invoice or ticket it concerns")


class Model(Base):
    """A trained model in the registry (模型仓库): what it was trained on, how it did, and the booster itself."""

    __tablename__ = "model"
    __table_args__ = (
        Index("ix_model_kind_status", "kind", "status"),
        Index(
            "uq_model_active_kind",
            "kind",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    version: Mapped[str] = mapped_column(String(64), primary_key=True, doc="e.g. churn-lgbm-2026.11.1")
    kind: Mapped[str] = mapped_column(String(16), doc="churn (离网) or bad_debt (坏账)")
    status: Mapped[str] = mapped_column(String(16), doc="candidate, active, retired or rejected")
    algorithm: Mapped[str] = mapped_column(String(32), default="lightgbm")
    source: Mapped[str] = mapped_column(String(32), doc="feature_store, ibm_telco or orange_wide")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    features: Mapped[list[str]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, doc="validation metrics: roc_auc, pr_auc, lift, brier…")
    training: Mapped[dict[str, Any]] = mapped_column(JSON, doc="window, snapshots, horizon, rows, positives")
    validation: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the validation set: snapshots, rows, fingerprint")
    calibration: Mapped[dict[str, Any]] = mapped_column(JSON, doc="isotonic map from raw to calibrated probability")
    bands: Mapped[dict[str, Any]] = mapped_column(JSON, doc="probability cut-offs of the high and medium bands")
    promotion: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="the comparison with the model it faced")
    artifact: Mapped[bytes] = mapped_column(LargeBinary, doc="the LightGBM model text, gzip-compressed")
    artifact_sha256: Mapped[str] = mapped_column(String(64))


class Score(Base):
    """A customer's current score of one kind, with the reasons given for it."""

    __tablename__ = "score"
    __table_args__ = (Index("ix_score_kind_band", "kind", "risk_band"),)

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    score: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    risk_band: Mapped[str] = mapped_column(String(8), doc="high (高危), medium (中危) or low (低危)")
    model_version: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    scored_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScoringRun(Base):
    """A batch scoring of the whole base (全量评分), on the schedule or on request."""

    __tablename__ = "scoring_run"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16), doc="schedule or request")
    status: Mapped[str] = mapped_column(String(16), doc="running, completed or failed")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    band_changes: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
