"""Training on customers drawn from a known logistic process, so the model can be held to what the process allows:
its validation AUC against the Bayes-optimal AUC of the true probabilities, its split against dates computed by
hand, its calibration against the raw weighted scores."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.predictor import pack, unpack
from crm_churn.domain.training import TrainedModel, TrainParams, compare, evaluate, train

PLANS = ("4G畅享38", "5G畅享128", "5G至尊299", "融合宽带199")
PLAN_EFFECT = np.array([0.6, 0.0, -0.8, -1.2])
SIGNAL = ["tenure_months", "complaints_90d", "arpu_change", "plan"]
NOISE = ["noise_0", "noise_1", "noise_2", "noise_3"]
FAST = TrainParams(learning_rate=0.1, max_rounds=300, early_stopping_rounds=20, min_data_in_leaf=50, num_threads=1)
"""One thread: small sets gain nothing from more, and the models come out the same on any machine."""


def monthly(snapshots: int) -> np.ndarray:
    return (np.datetime64("2024-01", "M") + np.arange(snapshots)).astype("datetime64[D]")


def customers(
    n_customers: int = 4000, snapshots: int = 8, horizon_days: int = 30, seed: int = 7, timed: bool = True
) -> tuple[TrainingSet, np.ndarray]:
    """Each customer at each monthly snapshot: churn odds fall with tenure, rise with complaints and a falling ARPU,
    and depend on the plan; four features carry nothing. Returns the set and every row's true probability."""
    rng = np.random.default_rng(seed)
    n = n_customers * snapshots
    tenure = rng.exponential(24.0, n)
    complaints = rng.poisson(0.4, n).astype(np.float64)
    arpu_change = rng.normal(0.0, 1.0, n)
    plan = rng.integers(0, len(PLANS), n)
    logit = -2.6 - 0.04 * tenure + 0.9 * complaints - 0.8 * arpu_change + PLAN_EFFECT[plan]
    truth = 1 / (1 + np.exp(-logit))
    observed_arpu = np.where(rng.random(n) < 0.02, np.nan, arpu_change)
    features = pd.DataFrame(
        {
            "tenure_months": tenure.astype(np.float32),
            "complaints_90d": complaints.astype(np.float32),
            "arpu_change": observed_arpu.astype(np.float32),
            "plan": pd.Categorical.from_codes(plan, categories=list(PLANS)),
        }
        | {name: rng.normal(size=n).astype(np.float32) for name in NOISE}
    )
    ts = TrainingSet(
        features=features,
        label=(rng.random(n) < truth).astype(np.int8),
        customer_id=np.tile(np.array([f"C{i:08d}" for i in range(n_customers)]), snapshots),
        as_of=np.repeat(monthly(snapshots), n_customers) if timed else None,
        source="synthetic",
        kind="churn",
        horizon_days=horizon_days,
    )
    return ts, truth


@pytest.fixture(scope="module")
def drawn() -> tuple[TrainingSet, np.ndarray]:
    return customers()


@pytest.fixture(scope="module")
def model(drawn: tuple[TrainingSet, np.ndarray]) -> TrainedModel:
    """Positives weighted well past the default cap, so calibration has a skew to undo that a test can see."""
    return train(drawn[0], replace(FAST, max_pos_weight=50.0), version="v-signal")


def test_validation_auc_is_near_the_bayes_optimal(drawn: tuple[TrainingSet, np.ndarray], model: TrainedModel) -> None:
    ts, truth = drawn
    validation = ts.as_of == monthly(8)[-1]
    bayes = roc_auc_score(ts.label[validation], truth[validation])
    assert model.metrics["roc_auc"] > 0.75
    assert model.metrics["roc_auc"] >= bayes - 0.035, (model.metrics["roc_auc"], bayes)
    served = model.predictor.probability(model.validation_set.features)
    assert model.metrics["roc_auc"] == pytest.approx(roc_auc_score(model.validation_set.label, served))


def test_signal_features_outrank_the_noise(model: TrainedModel) -> None:
    shares = [entry["gain_share"] for entry in model.importance]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0)
    ranked = [entry["feature"] for entry in model.importance]
    assert set(ranked[:4]) == set(SIGNAL), ranked


@pytest.mark.parametrize(
    ("validation_snapshots", "horizon_days", "training_months", "dropped_months"),
    [(1, 30, 7, 0), (1, 60, 6, 1), (2, 60, 5, 1), (1, 95, 4, 3)],
)
def test_time_split_keeps_training_labels_out_of_the_validation_period(
    validation_snapshots: int, horizon_days: int, training_months: int, dropped_months: int
) -> None:
    n_customers, dates = 1500, monthly(8)
    ts, _ = customers(n_customers=n_customers, horizon_days=horizon_days)
    params = replace(FAST, validation_snapshots=validation_snapshots)
    trained = train(ts, params, version="v1")

    first_validation = dates[-validation_snapshots]
    expected_training = [str(d) for d in dates[:training_months]]
    assert all(d + np.timedelta64(horizon_days, "D") <= first_validation for d in dates[:training_months])
    assert trained.training["snapshots"] == expected_training
    assert trained.training["window_start"] == "2024-01-01"
    assert trained.training["window_end"] == expected_training[-1]
    assert trained.training["split"] == "time"
    assert trained.training["rows"] == training_months * n_customers
    assert trained.training["overlapping_rows_dropped"] == dropped_months * n_customers
    assert trained.training["early_stopping"]["snapshots"] == [expected_training[-1]]
    assert trained.training["early_stopping"]["rows"] == n_customers
    assert trained.validation["snapshots"] == [str(d) for d in dates[-validation_snapshots:]]
    assert trained.validation["rows"] == validation_snapshots * n_customers
    assert set(trained.validation_set.as_of) == set(dates[-validation_snapshots:])
    assert trained.validation["fingerprint"] == ts.subset(ts.as_of >= first_validation).fingerprint()


def test_a_single_training_snapshot_stops_early_on_a_stratified_fifth_of_it() -> None:
    ts, _ = customers(n_customers=3000, snapshots=2)
    trained = train(ts, FAST, version="v1")
    january = ts.as_of == monthly(2)[0]
    assert trained.training["snapshots"] == ["2024-01-01"]
    assert trained.training["early_stopping"]["snapshots"] == ["2024-01-01"]
    assert trained.training["early_stopping"]["rows"] == 600
    expected_positives = ts.label[january].sum() * 0.2
    assert abs(trained.training["early_stopping"]["positives"] - expected_positives) <= 1
    assert trained.validation["snapshots"] == ["2024-02-01"]


def test_calibration_brings_the_weighted_scores_back_to_probabilities(model: TrainedModel) -> None:
    assert model.params["scale_pos_weight"] > 5
    validation = model.validation_set
    raw = model.predictor.raw(validation.features)
    calibrated = model.predictor.probability(validation.features)
    brier_raw = np.mean((raw - validation.label) ** 2)
    assert model.metrics["brier"] == pytest.approx(np.mean((calibrated - validation.label) ** 2))
    assert model.metrics["brier"] < 0.8 * brier_raw
    assert calibrated.mean() == pytest.approx(validation.label.mean(), abs=0.02)
    assert raw.mean() > 2 * validation.label.mean()


def test_bands_cut_the_validation_customers_by_the_shares(model: TrainedModel) -> None:
    probability = model.predictor.probability(model.validation_set.features)
    bands = model.predictor.bands.of(probability)
    label = model.validation_set.label
    assert model.predictor.bands.high > model.predictor.bands.medium
    assert 0.10 <= np.mean(bands == "high") < 0.2
    assert 0.30 <= np.mean(bands != "low") < 0.4
    assert label[bands == "high"].mean() > label[bands == "medium"].mean() > label[bands == "low"].mean()


def test_metrics_are_plain_json_and_the_served_model_is_the_stored_one(model: TrainedModel) -> None:
    json.dumps([model.params, model.metrics, model.training, model.validation, model.importance, model.curves])
    assert len(model.metrics["lift_by_decile"]) == 10
    assert model.metrics["top_decile_lift"] > 3
    assert 0 < model.metrics["best_iteration"] < FAST.max_rounds
    assert model.predictor.booster.current_iteration() == model.metrics["best_iteration"]
    restored = replace(model.predictor, booster=unpack(*pack(model.predictor.booster)))
    frame = model.validation_set.features
    np.testing.assert_array_equal(restored.probability(frame), model.predictor.probability(frame))


def test_a_categorical_feature_is_learnt_and_read_by_its_values() -> None:
    rng = np.random.default_rng(3)
    regions = [f"R{i:02d}" for i in range(12)]
    n = 24_000
    region = rng.integers(0, len(regions), n)
    truth = 1 / (1 + np.exp(-(-2.5 + rng.normal(0, 1.2, len(regions))[region])))
    ts = TrainingSet(
        features=pd.DataFrame(
            {
                "region": pd.Categorical.from_codes(region, categories=regions),
                "noise": rng.normal(size=n).astype(np.float32),
            }
        ),
        label=(rng.random(n) < truth).astype(np.int8),
        customer_id=np.tile(np.arange(4000).astype(str), 6),
        as_of=np.repeat(monthly(6), 4000),
        source="synthetic",
        kind="churn",
        horizon_days=30,
    )
    trained = train(ts, FAST, version="v1")
    validation = ts.as_of == monthly(6)[-1]
    bayes = roc_auc_score(ts.label[validation], truth[validation])
    assert trained.metrics["roc_auc"] >= bayes - 0.02, (trained.metrics["roc_auc"], bayes)
    assert trained.importance[0]["feature"] == "region"

    frame = trained.validation_set.features
    reordered = frame.assign(region=frame["region"].cat.reorder_categories(regions[::-1]))
    np.testing.assert_allclose(trained.predictor.probability(reordered), trained.predictor.probability(frame))


def test_a_set_without_time_is_split_at_random_stratified_and_reproducibly() -> None:
    ts, _ = customers(n_customers=2500, snapshots=2, timed=False)
    first = train(ts, FAST, version="v1")
    again = train(ts, FAST, version="v2")
    other_seed = train(ts, replace(FAST, seed=43), version="v3")

    assert first.training["split"] == "random"
    assert first.training["window_start"] is None and first.training["snapshots"] == []
    assert first.validation["rows"] == 1000
    assert first.training["early_stopping"]["rows"] == 1000
    assert abs(first.validation["positives"] - ts.positives * 0.2) <= 1
    assert abs(first.training["early_stopping"]["positives"] - ts.positives * 0.2) <= 1
    assert first.validation["fingerprint"] == again.validation["fingerprint"]
    assert first.metrics == again.metrics
    assert first.validation["fingerprint"] != other_seed.validation["fingerprint"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ts: ts.subset(np.zeros(ts.rows, dtype=bool)), "no rows"),
        (lambda ts: replace(ts, label=np.zeros(ts.rows, dtype=np.int8)), "no positives"),
        (lambda ts: replace(ts, label=np.where(ts.as_of == monthly(4)[-1], 0, ts.label)), "validation part.*no pos"),
        (lambda ts: ts.subset(ts.as_of == monthly(4)[0]), "more than 1 snapshot date"),
        (lambda ts: replace(ts, horizon_days=100), "overlap the validation period"),
        (lambda ts: replace(ts, features=ts.features[[]]), "no features"),
    ],
    ids=["empty", "no-positives", "no-validation-positives", "one-snapshot", "horizon-too-long", "no-features"],
)
def test_a_set_that_cannot_be_trained_on_says_why(change: object, message: str) -> None:
    ts, _ = customers(n_customers=500, snapshots=4)
    with pytest.raises(ValueError, match=message):
        train(change(ts), FAST, version="v1")  # type: ignore[operator]


def test_parameters_travel_as_json_and_reject_nonsense() -> None:
    params = TrainParams(num_leaves=63, validation_snapshots=2)
    assert TrainParams.from_wire(json.loads(json.dumps(params.wire()))) == params
    with pytest.raises(ValueError, match="unknown training parameters: leaves"):
        TrainParams.from_wire({"leaves": 3})
    with pytest.raises(ValueError, match="high_share"):
        TrainParams(high_share=0.6, medium_share=0.5)
    with pytest.raises(ValueError, match="validation_snapshots"):
        TrainParams(validation_snapshots=0)


def test_evaluate_on_scores_worked_by_hand() -> None:
    label = np.array([1] * 10 + [0] * 90)
    perfect = evaluate(label.astype(float), label)
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    assert perfect["top_decile_lift"] == pytest.approx(10.0)
    assert perfect["lift_by_decile"] == pytest.approx([10.0] + [0.0] * 9)
    assert perfect["brier"] == 0.0
    assert perfect["base_rate"] == pytest.approx(0.1)

    constant = evaluate(np.full(100, 0.1), label)
    assert constant["roc_auc"] == 0.5
    assert constant["lift_by_decile"] == pytest.approx([1.0] * 10)
    assert constant["brier"] == pytest.approx(0.09)
    assert constant["log_loss"] == pytest.approx(-(0.1 * np.log(0.1) + 0.9 * np.log(0.9)))
    assert [b["count"] for b in constant["calibration"]] == [10] * 10
    assert all(b["observed_rate"] == pytest.approx(0.1) for b in constant["calibration"])
    with pytest.raises(ValueError, match="no positives"):
        evaluate(np.full(5, 0.5), np.zeros(5))


def test_a_model_of_the_real_signal_beats_one_of_noise(
    drawn: tuple[TrainingSet, np.ndarray], model: TrainedModel
) -> None:
    ts = drawn[0]
    noise_only = train(replace(ts, features=ts.features[NOISE]), FAST, version="v-noise").predictor
    validation = model.validation_set

    verdict = compare(model.predictor, noise_only, validation)
    assert verdict.comparable and verdict.better
    assert verdict.candidate_auc > 0.7 and verdict.incumbent_auc is not None and verdict.incumbent_auc < 0.6
    assert "v-signal" in verdict.reason and "v-noise" in verdict.reason

    reverse = compare(noise_only, model.predictor, validation)
    assert reverse.comparable and not reverse.better

    itself = compare(model.predictor, model.predictor, validation)
    assert itself.comparable and not itself.better


def test_an_incumbent_that_cannot_score_the_set_is_not_comparable(
    drawn: tuple[TrainingSet, np.ndarray], model: TrainedModel
) -> None:
    ts = drawn[0]
    without = train(replace(ts, features=ts.features.drop(columns=["complaints_90d"])), FAST, version="v-without")
    verdict = compare(without.predictor, model.predictor, without.validation_set)
    assert not verdict.comparable and not verdict.better
    assert verdict.incumbent_auc is None
    assert "complaints_90d" in verdict.reason

    other_kind = compare(model.predictor, replace(model.predictor, kind="bad_debt"), model.validation_set)
    assert not other_kind.comparable and other_kind.incumbent_auc is None
    assert "bad_debt" in other_kind.reason
