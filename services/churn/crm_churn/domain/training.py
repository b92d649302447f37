"""Learning a churn (离网) or bad-debt (坏账) model from a training set: an out-of-time split so the validation
numbers are those the model will meet on the next snapshot, LightGBM with the rare positives weighted up, an
isotonic calibration that turns the weighted scores back into probabilities, and the metrics, curves and risk
bands that decide whether it replaces the model in service."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.predictor import Bands, Calibration, Predictor

DECILES = 10
CURVE_POINTS = 201
"""Enough points for the report to draw a smooth ROC or PR curve, few enough to keep the registry entry small."""
LOG_LOSS_EPSILON = 1e-7
"""Isotonic calibration can give exactly 0 or 1; one such miss must cost a large but finite log loss."""


@dataclass
class TrainParams:
    """The booster's parameters (LightGBM's names) and how the set is split and banded. Defaults suit a few
    percent of positives over tens of features and millions of rows."""

    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l1: float = 0.0
    lambda_l2: float = 1.0
    max_bin: int = 255
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    max_pos_weight: float = 3.0
    """Positives are weighted negatives/positives, but at most this: the rare churners count more without a few of
    them driving every split, and early stopping on one snapshot's AUC stays steady (on the simulated base a weight
    of 15 stopped after 20 trees, 0.01 AUC lower); calibration then undoes the weighting."""
    seed: int = 42
    num_threads: int = 0
    validation_snapshots: int = 1
    high_share: float = 0.10
    """The share of the validation customers that falls in 高危; `medium_share` the next share, 中危."""
    medium_share: float = 0.20

    def __post_init__(self) -> None:
        if self.validation_snapshots < 1:
            raise ValueError("validation_snapshots must be at least 1")
        if self.max_rounds < 1 or self.early_stopping_rounds < 1:
            raise ValueError("max_rounds and early_stopping_rounds must be at least 1")
        if self.high_share <= 0 or self.medium_share < 0 or self.high_share + self.medium_share >= 1:
            raise ValueError("high_share must be above 0 and high_share + medium_share below 1")
        if self.max_pos_weight < 1:
            raise ValueError("max_pos_weight must be at least 1")

    def wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TrainParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}")
        return cls(**data)

    def booster_params(self, scale_pos_weight: float) -> dict[str, Any]:
        """AUC for early stopping: the weighting skews the raw probabilities, which calibration corrects, so only
        the ranking should decide when to stop."""
        return {
            "objective": "binary",
            "metric": "auc",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l1": self.lambda_l1,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "scale_pos_weight": scale_pos_weight,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }


@dataclass
class TrainedModel:
    """What the registry records of a training: the predictor as it will serve, and the evidence for it."""

    predictor: Predictor
    params: dict[str, Any]
    metrics: dict[str, Any]
    training: dict[str, Any]
    validation: dict[str, Any]
    validation_set: TrainingSet
    importance: list[dict[str, Any]]
    curves: dict[str, Any]
    seconds: float


@dataclass
class Comparison:
    """A candidate against the model in service, both scored on the candidate's validation rows."""

    candidate_auc: float
    incumbent_auc: float | None
    comparable: bool
    better: bool
    reason: str


@dataclass
class _Split:
    """Row positions of the three parts: `fit` grows the trees, `stop` ends the boosting and fits the
    calibration, `validation` judges the result."""

    kind: str
    fit: np.ndarray
    stop: np.ndarray
    validation: np.ndarray
    overlapping: int = 0
    """Training rows left out because their horizon reaches into the validation period."""
    stop_dates: list[np.datetime64] = field(default_factory=list)


def train(ts: TrainingSet, params: TrainParams | None = None, *, version: str) -> TrainedModel:
    params = params or TrainParams()
    started = time.perf_counter()
    if ts.rows == 0:
        raise ValueError("the training set has no rows")
    if ts.features.shape[1] == 0:
        raise ValueError("the training set has no features")
    label = np.asarray(ts.label, dtype=np.float32)
    split = _time_split(ts, params) if ts.as_of is not None else _random_split(ts, params)
    for part, rows in (("training", split.fit), ("early-stopping", split.stop), ("validation", split.validation)):
        _require_both_classes(label[rows], f"the {part} part of the split")

    positives = float(label[split.fit].sum())
    scale_pos_weight = min((len(split.fit) - positives) / positives, params.max_pos_weight)
    booster_params = params.booster_params(scale_pos_weight)
    fit_data = lgb.Dataset(ts.features.iloc[split.fit], label=label[split.fit], free_raw_data=True)
    stop_frame = ts.features.iloc[split.stop]
    stop_data = lgb.Dataset(stop_frame, label=label[split.stop], reference=fit_data, free_raw_data=True)
    trained = lgb.train(
        booster_params,
        fit_data,
        num_boost_round=params.max_rounds,
        valid_sets=[stop_data],
        valid_names=["early_stopping"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    best_iteration = trained.best_iteration or trained.current_iteration()
    booster = lgb.Booster(model_str=trained.model_to_string(num_iteration=best_iteration))
    del trained, fit_data, stop_data

    raw_stop = np.asarray(booster.predict(stop_frame, num_threads=params.num_threads), dtype=np.float64)
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_stop, label[split.stop])
    del stop_frame, raw_stop
    calibration = Calibration(x=np.asarray(isotonic.X_thresholds_), y=np.asarray(isotonic.y_thresholds_))

    validation_set = ts.subset(_mask(ts.rows, split.validation))
    unbanded = Predictor(
        version, ts.kind, list(ts.features.columns), booster, calibration, Bands(1.0, 1.0), ts.horizon_days
    )
    probability = unbanded.probability(validation_set.features, threads=params.num_threads)
    bands = Bands(
        high=float(np.quantile(probability, 1 - params.high_share)),
        medium=float(np.quantile(probability, 1 - params.high_share - params.medium_share)),
    )
    metrics = evaluate(probability, validation_set.label)
    metrics["best_iteration"] = int(best_iteration)

    return TrainedModel(
        predictor=replace(unbanded, bands=bands),
        params={**params.wire(), "scale_pos_weight": float(scale_pos_weight)},
        metrics=metrics,
        training=_training_summary(ts, split, label),
        validation={
            "snapshots": _iso_dates(validation_set.as_of),
            "rows": validation_set.rows,
            "positives": validation_set.positives,
            "fingerprint": validation_set.fingerprint(),
        },
        validation_set=validation_set,
        importance=_importance(booster),
        curves=_curves(probability, validation_set.label, metrics),
        seconds=time.perf_counter() - started,
    )


def compare(candidate: Predictor, incumbent: Predictor, validation: TrainingSet) -> Comparison:
    """Only an AUC on the same rows says which model ranks better; an incumbent that cannot score these rows (a
    feature the set no longer has, another kind of risk) has no AUC to beat."""
    candidate_auc = float(roc_auc_score(validation.label, candidate.probability(validation.features)))
    if incumbent.kind != validation.kind:
        reason = f"the incumbent {incumbent.version} predicts {incumbent.kind}, the validation set is {validation.kind}"
        return Comparison(candidate_auc, None, comparable=False, better=False, reason=reason)
    missing = [f for f in incumbent.features if f not in validation.features.columns]
    if missing:
        reason = f"the incumbent {incumbent.version} needs features the validation set lacks: {', '.join(missing)}"
        return Comparison(candidate_auc, None, comparable=False, better=False, reason=reason)
    incumbent_auc = float(roc_auc_score(validation.label, incumbent.probability(validation.features)))
    better = candidate_auc > incumbent_auc
    verdict = "above" if better else "not above"
    reason = (
        f"candidate {candidate.version} AUC {candidate_auc:.4f} is {verdict} incumbent {incumbent.version} "
        f"AUC {incumbent_auc:.4f} on {validation.rows} validation rows"
    )
    return Comparison(candidate_auc, incumbent_auc, comparable=True, better=better, reason=reason)


def evaluate(probability: np.ndarray, label: np.ndarray) -> dict[str, Any]:
    """The numbers a retention manager reads: how well the score ranks (ROC and PR AUC, lift by decile) and
    whether its probabilities can be taken at face value (Brier, log loss, calibration by decile)."""
    probability = np.asarray(probability, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    if len(probability) != len(label):
        raise ValueError("probability and label must have one entry per row")
    _require_both_classes(label, "the evaluated rows")
    base_rate = float(label.mean())
    deciles = _deciles(probability, label)
    lift = [float(observed / base_rate) for _, observed, _ in deciles]
    clipped = np.clip(probability, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    log_loss = -np.mean(label * np.log(clipped) + (1 - label) * np.log1p(-clipped))
    return {
        "roc_auc": float(roc_auc_score(label, probability)),
        "pr_auc": float(average_precision_score(label, probability)),
        "top_decile_lift": lift[0],
        "lift_by_decile": lift,
        "brier": float(np.mean((probability - label) ** 2)),
        "log_loss": float(log_loss),
        "base_rate": base_rate,
        "calibration": [
            {"mean_predicted": float(predicted), "observed_rate": float(observed), "count": int(count)}
            for predicted, observed, count in deciles
        ],
        "rows": len(label),
        "positives": int(label.sum()),
    }


def _time_split(ts: TrainingSet, params: TrainParams) -> _Split:
    """Validation is the latest snapshot(s); a training row counts only if its label was settled before the first
    validation snapshot, or the model would have learnt from the validation period's outcomes."""
    as_of = np.asarray(ts.as_of, dtype="datetime64[D]")
    if np.isnat(as_of).any():
        raise ValueError(f"{int(np.isnat(as_of).sum())} rows have no snapshot date (as_of)")
    dates = np.unique(as_of)
    if len(dates) <= params.validation_snapshots:
        raise ValueError(
            f"a time split needs more than {params.validation_snapshots} snapshot date(s) "
            f"(validation_snapshots); the set has {len(dates)}"
        )
    first_validation = dates[-params.validation_snapshots]
    training = as_of + np.timedelta64(ts.horizon_days, "D") <= first_validation
    overlapping = int(((as_of < first_validation) & ~training).sum())
    training_dates = np.unique(as_of[training])
    if len(training_dates) == 0:
        raise ValueError(
            f"no snapshot is at least {ts.horizon_days} days (the horizon) before the first validation snapshot "
            f"{first_validation}: every training label would overlap the validation period"
        )
    validation = np.flatnonzero(as_of >= first_validation)
    if len(training_dates) == 1:
        fit, stop = _stratified(np.flatnonzero(training), ts.label, 0.2, params.seed, "the single training snapshot")
        return _Split("time", fit, stop, validation, overlapping, [training_dates[0]])
    stop_date = training_dates[-1]
    fit = np.flatnonzero(training & (as_of != stop_date))
    stop = np.flatnonzero(as_of == stop_date)
    return _Split("time", fit, stop, validation, overlapping, [stop_date])


def _random_split(ts: TrainingSet, params: TrainParams) -> _Split:
    """A set without time can only be split at random: 60% fit, 20% early stopping and calibration, 20%
    validation, each with the set's positive rate."""
    rest, validation = _stratified(np.arange(ts.rows), ts.label, 0.2, params.seed, "the training set")
    fit, stop = _stratified(rest, ts.label, 0.25, params.seed, "the training set")
    return _Split("random", fit, stop, validation)


def _stratified(rows: np.ndarray, label: np.ndarray, share: float, seed: int, what: str) -> tuple[np.ndarray, ...]:
    part = label[rows]
    positives = int(part.sum())
    if positives < 2 or len(part) - positives < 2:
        raise ValueError(
            f"{what} has {positives} positives and {len(part) - positives} negatives; a stratified split needs "
            "at least 2 of each"
        )
    kept, held = train_test_split(rows, test_size=share, random_state=seed, stratify=part)
    return np.sort(kept), np.sort(held)


def _require_both_classes(label: np.ndarray, what: str) -> None:
    if len(label) == 0:
        raise ValueError(f"{what} has no rows")
    positives = int(np.asarray(label).sum())
    if positives == 0:
        raise ValueError(f"{what} has no positives ({len(label)} rows, all 0)")
    if positives == len(label):
        raise ValueError(f"{what} has no negatives ({len(label)} rows, all 1)")


def _mask(rows: int, positions: np.ndarray) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    mask[positions] = True
    return mask


def _deciles(probability: np.ndarray, label: np.ndarray) -> list[tuple[float, float, int]]:
    """Per tenth of the rows by descending score: mean score, positive rate, rows. Tied scores (isotonic steps tie
    many rows) share their positives evenly, so no arbitrary order among ties moves a decile's rate."""
    order = np.argsort(-probability, kind="stable")
    ranked = probability[order]
    _, tie_group = np.unique(ranked, return_inverse=True)
    expected = (np.bincount(tie_group, weights=label[order]) / np.bincount(tie_group))[tie_group]
    return [
        (float(scores.mean()), float(outcomes.mean()), len(scores))
        for scores, outcomes in zip(np.array_split(ranked, DECILES), np.array_split(expected, DECILES), strict=True)
    ]


def _thin(*series: np.ndarray) -> list[list[float]]:
    positions = np.unique(np.linspace(0, len(series[0]) - 1, CURVE_POINTS).round().astype(int))
    return [[float(v) for v in s[positions]] for s in series]


def _curves(probability: np.ndarray, label: np.ndarray, metrics: dict[str, Any]) -> dict[str, Any]:
    fpr, tpr, _ = roc_curve(label, probability)
    precision, recall, _ = precision_recall_curve(label, probability)
    fpr_points, tpr_points = _thin(fpr, tpr)
    recall_points, precision_points = _thin(recall, precision)
    return {
        "roc": {"fpr": fpr_points, "tpr": tpr_points},
        "pr": {"recall": recall_points, "precision": precision_points},
        "lift": metrics["lift_by_decile"],
        "calibration": metrics["calibration"],
    }


def _importance(booster: lgb.Booster) -> list[dict[str, Any]]:
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    total = gain.sum()
    shares = gain / total if total > 0 else gain
    ranked = sorted(zip(booster.feature_name(), shares, strict=True), key=lambda pair: -pair[1])
    return [{"feature": name, "gain_share": float(share)} for name, share in ranked]


def _iso_dates(as_of: np.ndarray | None) -> list[str]:
    if as_of is None:
        return []
    return [str(d) for d in np.unique(np.asarray(as_of, dtype="datetime64[D]"))]


def _training_summary(ts: TrainingSet, split: _Split, label: np.ndarray) -> dict[str, Any]:
    rows = np.concatenate([split.fit, split.stop])
    snapshots = _iso_dates(None if ts.as_of is None else ts.as_of[rows])
    return {
        "window_start": snapshots[0] if snapshots else None,
        "window_end": snapshots[-1] if snapshots else None,
        "snapshots": snapshots,
        "horizon_days": ts.horizon_days,
        "rows": len(rows),
        "positives": int(label[rows].sum()),
        "source": ts.source,
        "split": split.kind,
        "overlapping_rows_dropped": split.overlapping,
        "early_stopping": {
            "snapshots": [str(d) for d in split.stop_dates],
            "rows": len(split.stop),
            "positives": int(label[split.stop].sum()),
        },
    }
