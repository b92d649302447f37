"""The file loaders on files the project writes in the public layouts: what the loaded frame holds, every way a file
can be wrong, and that LightGBM still finds the churn planted in the file once it has gone through the loader."""

from __future__ import annotations

import csv
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.loaders import (
    OTHER,
    DatasetError,
    detect_layout,
    load_ibm_telco,
    load_orange_wide,
)

from .sample_files import (
    ORANGE_EMPTY,
    ORANGE_HIGH_CARDINALITY,
    write_ibm_telco_sample,
    write_orange_sample,
)

IBM_ROWS = 2000
ORANGE_ROWS = 3000

IBM_FEATURES = [
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure_months",
    "phone_service",
    "multiple_lines",
    "internet_service",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
    "contract",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
]
ADDON_FEATURES = [
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
]
IBM_CATEGORIES = {
    "gender": ["Female", "Male"],
    "internet_service": ["No", "DSL", "Fiber optic"],
    "contract": ["Month-to-month", "One year", "Two year"],
    "payment_method": ["Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"],
}


@pytest.fixture(scope="module")
def ibm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("ibm") / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    return path, write_ibm_telco_sample(path, IBM_ROWS, seed=7)


@pytest.fixture(scope="module")
def orange(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    folder = tmp_path_factory.mktemp("orange")
    data, labels = folder / "orange_small_train.data", folder / "orange_small_train_churn.labels"
    return data, labels, write_orange_sample(data, labels, ORANGE_ROWS, seed=11)


def rows_of(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    """The file as the csv module reads it: the tests' independent view of what was written."""
    with path.open(newline="", encoding="utf-8-sig") as lines:
        return list(csv.DictReader(lines, delimiter=delimiter))


def rewrite(source: Path, target: Path, edit, delimiter: str = ",") -> Path:
    """A copy of `source` with `edit(rows)` applied to its rows (header first)."""
    with source.open(newline="", encoding="utf-8") as lines:
        rows = list(csv.reader(lines, delimiter=delimiter))
    with target.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(edit(rows))
    return target


def set_value(column: str, row: int, value: str):
    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[row][rows[0].index(column)] = value
        return rows

    return edit


def validation_auc(training: TrainingSet, seed: int = 3) -> float:
    """AUC on a random 30% held out from a few dozen boosting rounds on the rest, the loaded frame as it is. The split's
    generator is seeded apart from the sample's, whose draws it would otherwise repeat (and split by contract)."""
    held_out = np.random.default_rng([2009, seed]).random(training.rows) < 0.3
    fit, check = training.subset(~held_out), training.subset(held_out)
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "num_threads": 1,
        "seed": seed,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(fit.features, label=fit.label), num_boost_round=40)
    return float(roc_auc_score(check.label, booster.predict(check.features)))


def test_ibm_features_are_named_and_typed(ibm: tuple[Path, int]) -> None:
    training = load_ibm_telco(ibm[0])

    assert list(training.features.columns) == IBM_FEATURES
    for name in IBM_FEATURES:
        expected = "category" if name in IBM_CATEGORIES else "float32"
        assert str(training.features[name].dtype) == expected, name
    for name, levels in IBM_CATEGORIES.items():
        assert list(training.features[name].cat.categories) == levels
    assert (training.source, training.kind, training.horizon_days, training.as_of) == ("ibm_telco", "churn", 30, None)


def test_ibm_rows_labels_and_ids_match_the_file(ibm: tuple[Path, int]) -> None:
    path, churned = ibm
    training = load_ibm_telco(path)
    written = rows_of(path)

    assert training.rows == IBM_ROWS
    assert training.positives == churned == sum(row["Churn"] == "Yes" for row in written)
    assert list(training.customer_id) == [row["customerID"] for row in written]
    assert training.label.tolist() == [int(row["Churn"] == "Yes") for row in written]
    assert training.features["monthly_charges"].to_numpy() == pytest.approx(
        [float(row["MonthlyCharges"]) for row in written], rel=1e-6
    )


def test_ibm_blank_total_charges_are_unknown(ibm: tuple[Path, int]) -> None:
    path, _ = ibm
    training = load_ibm_telco(path)
    blank = np.array([row["TotalCharges"] == " " for row in rows_of(path)])

    assert blank.sum() > 0
    assert np.array_equal(training.features["total_charges"].isna().to_numpy(), blank)
    assert (training.features.loc[blank, "tenure_months"] == 0).all()


def test_ibm_no_service_reads_as_not_having_the_addon(ibm: tuple[Path, int]) -> None:
    path, _ = ibm
    features = load_ibm_telco(path).features
    written = rows_of(path)
    no_internet = np.array([row["InternetService"] == "No" for row in written])
    no_phone = np.array([row["MultipleLines"] == "No phone service" for row in written])

    assert no_internet.any() and no_phone.any()
    assert np.array_equal((features["internet_service"] == "No").to_numpy(), no_internet)
    for name in ADDON_FEATURES:
        assert (features.loc[no_internet, name] == 0).all()
        assert features[name].isna().sum() == 0
    assert (features.loc[no_phone, "multiple_lines"] == 0).all()
    assert np.array_equal((features["phone_service"] == 0).to_numpy(), no_phone)


def test_ibm_reads_quoted_crlf_and_bom_copies_the_same(ibm: tuple[Path, int], tmp_path: Path) -> None:
    """What a spreadsheet re-save does to the file must not change the training set."""
    path, _ = ibm
    copy = tmp_path / "resaved.csv"
    with path.open(newline="", encoding="utf-8") as lines:
        rows = list(csv.reader(lines))
    with copy.open("w", newline="", encoding="utf-8-sig") as out:
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)

    original, resaved = load_ibm_telco(path), load_ibm_telco(copy)

    assert detect_layout(copy) == "ibm_telco"
    pd.testing.assert_frame_equal(original.features, resaved.features)
    assert original.fingerprint() == resaved.fingerprint()


def test_ibm_loader_keeps_the_planted_signal(ibm: tuple[Path, int]) -> None:
    assert validation_auc(load_ibm_telco(ibm[0])) > 0.75


def test_orange_features_are_typed_and_empty_columns_dropped(orange: tuple[Path, Path, int]) -> None:
    data, labels, _ = orange
    training = load_orange_wide(data, labels)
    features = training.features

    assert features.attrs["empty_columns"] == list(ORANGE_EMPTY)
    expected = [f"Var{n}" for n in range(1, 231) if f"Var{n}" not in ORANGE_EMPTY]
    assert list(features.columns) == expected
    for name in expected:
        assert str(features[name].dtype) == ("float32" if int(name[3:]) <= 190 else "category"), name
    assert (training.source, training.kind, training.horizon_days, training.as_of) == ("orange_wide", "churn", 30, None)


def test_orange_labels_ids_and_blanks_match_the_file(orange: tuple[Path, Path, int]) -> None:
    data, labels, churned = orange
    training = load_orange_wide(data, labels)
    written = rows_of(data, delimiter="\t")

    assert training.rows == ORANGE_ROWS
    assert training.positives == churned
    assert training.label.tolist() == [int(line == "1") for line in labels.read_text().split()]
    assert training.customer_id[0] == "ROW-1" and training.customer_id[-1] == f"ROW-{ORANGE_ROWS}"
    for name in ("Var6", "Var126", "Var205"):
        blank = np.array([row[name] == "" for row in written])
        assert blank.any()
        assert np.array_equal(training.features[name].isna().to_numpy(), blank), name
    assert training.features["Var113"].to_numpy() == pytest.approx([float(row["Var113"]) for row in written], rel=1e-6)


def test_orange_caps_high_cardinality_categoricals(orange: tuple[Path, Path, int]) -> None:
    data, labels, _ = orange
    features = load_orange_wide(data, labels, max_levels=50).features
    written = rows_of(data, delimiter="\t")

    for name in ORANGE_HIGH_CARDINALITY:
        counts = pd.Series([row[name] for row in written if row[name]]).value_counts()
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = sorted(level for level, _ in ranked[:50])
        assert list(features[name].cat.categories) == [*kept, OTHER]
        assert features.attrs["levels_folded"][name] == len(counts) - 50
        folded = sum(count for _, count in ranked[50:])
        assert (features[name] == OTHER).sum() == folded
    small = features["Var218"]
    assert list(small.cat.categories) == ["UYBR", "cJvF"]
    assert "Var218" not in features.attrs["levels_folded"]


def test_orange_cap_and_levels_do_not_depend_on_row_order(orange: tuple[Path, Path, int], tmp_path: Path) -> None:
    data, labels, _ = orange
    reversed_data = rewrite(data, tmp_path / "reversed.data", lambda rows: [rows[0], *rows[:0:-1]], "\t")
    reversed_labels = tmp_path / "reversed.labels"
    reversed_labels.write_text("\n".join(reversed(labels.read_text().split())) + "\n")

    forward = load_orange_wide(data, labels, max_levels=10).features
    backward = load_orange_wide(reversed_data, reversed_labels, max_levels=10).features

    for name in ("Var217", "Var226"):
        assert list(forward[name].cat.categories) == list(backward[name].cat.categories)


def test_orange_label_column_in_the_data_file(tmp_path: Path) -> None:
    data = tmp_path / "with_churn.tsv"
    churned = write_orange_sample(data, None, 400, seed=5)

    training = load_orange_wide(data, kind="bad_debt")

    assert training.positives == churned
    assert training.kind == "bad_debt"
    assert "churn" not in training.features.columns

    zero_one = rewrite(
        data,
        tmp_path / "zero_one.tsv",
        lambda rows: [[*rows[0][:-1], "label"], *[[*row[:-1], "0" if row[-1] == "-1" else "1"] for row in rows[1:]]],
        "\t",
    )
    assert load_orange_wide(zero_one).label.tolist() == training.label.tolist()


def test_orange_id_column(tmp_path: Path) -> None:
    data = tmp_path / "ids.tsv"
    write_orange_sample(data, None, 50, seed=5)
    with_ids = rewrite(
        data,
        tmp_path / "with_ids.tsv",
        lambda rows: [["msisdn", *rows[0]], *[[f"1380000{n:04d}", *row] for n, row in enumerate(rows[1:])]],
        "\t",
    )

    training = load_orange_wide(with_ids, id_column="msisdn")

    assert training.customer_id[:2].tolist() == ["13800000000", "13800000001"]
    assert "msisdn" not in training.features.columns


def test_orange_rows_with_a_trailing_tab(orange: tuple[Path, Path, int], tmp_path: Path) -> None:
    data, labels, _ = orange
    trailing = tmp_path / "trailing.data"
    trailing.write_text("".join(line + "\t\n" for line in data.read_text().splitlines()))

    pd.testing.assert_frame_equal(load_orange_wide(trailing, labels).features, load_orange_wide(data, labels).features)


def test_orange_loader_keeps_the_planted_signal(orange: tuple[Path, Path, int]) -> None:
    data, labels, _ = orange
    assert validation_auc(load_orange_wide(data, labels)) > 0.75


def test_detect_layout(ibm: tuple[Path, int], orange: tuple[Path, Path, int], tmp_path: Path) -> None:
    assert detect_layout(ibm[0]) == "ibm_telco"
    assert detect_layout(orange[0]) == "orange_wide"
    other = tmp_path / "other.csv"
    other.write_text("msisdn,arpu,left\n13800000000,58.0,0\n")
    with pytest.raises(DatasetError, match=r"neither the IBM Telco layout .* nor the Orange wide layout"):
        detect_layout(other)
    with pytest.raises(DatasetError, match="file not found"):
        detect_layout(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (set_value("Churn", 5, "Maybe"), r"Churn value 'Maybe' on line 6 not understood \(expected Yes or No\)"),
        (set_value("Churn", 9, ""), r"Churn value '' on line 10 not understood"),
        (set_value("Partner", 3, "Y"), r"Partner value 'Y' on line 4 not understood \(expected Yes, No or blank\)"),
        (set_value("MonthlyCharges", 2, "29,85"), r"MonthlyCharges value '29,85' on line 3 not understood"),
        (set_value("Contract", 7, "Three year"), r"Contract value 'Three year' on line 8 not understood"),
        (set_value("customerID", 4, ""), r"customerID value '' on line 5 not understood"),
        (
            lambda rows: [*rows, rows[1]],
            rf"customerID '[0-9]{{4}}-[A-Z]{{5}}' on line {IBM_ROWS + 2} repeats an earlier row",
        ),
        (
            lambda rows: [[v for i, v in enumerate(row) if i not in (15, 20)] for row in rows],
            r"missing columns: Contract, Churn$",
        ),
        (lambda rows: [*rows[:3], [*rows[3], "extra"], *rows[4:]], r"cannot be read as comma-separated text"),
        (lambda rows: rows[:1], r"has a header but no data rows"),
        (lambda rows: [rows[0], *[[*row[:-1], "No"] for row in rows[1:]]], r"no positives \(1\) in 2000 rows"),
        (lambda rows: [rows[0], *[[*row[:-1], "Yes"] for row in rows[1:]]], r"no negatives \(0\) in 2000 rows"),
    ],
)
def test_ibm_bad_files_name_what_is_wrong(ibm: tuple[Path, int], tmp_path: Path, edit, message: str) -> None:
    bad = rewrite(ibm[0], tmp_path / "bad.csv", edit)

    with pytest.raises(DatasetError, match=message):
        load_ibm_telco(bad)


def test_ibm_line_numbers_count_blank_lines(ibm: tuple[Path, int], tmp_path: Path) -> None:
    """An operator opens the file at the line the message gives, so blank lines the reader skips still count."""
    lines = ibm[0].read_text().splitlines()
    fields = lines[5].split(",")
    fields[-1] = "Maybe"
    bad = tmp_path / "blank_lines.csv"
    bad.write_text("\n".join([*lines[:2], "", "", *lines[2:5], ",".join(fields), *lines[6:]]) + "\n")

    with pytest.raises(DatasetError, match="'Maybe' on line 8 "):
        load_ibm_telco(bad)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")

    with pytest.raises(DatasetError, match=r"absent\.csv: file not found"):
        load_ibm_telco(tmp_path / "absent.csv")
    with pytest.raises(DatasetError, match=r"empty\.csv: file is empty"):
        load_ibm_telco(empty)
    with pytest.raises(DatasetError, match=r"blank\.csv: file has no header"):
        load_ibm_telco(blank)
    with pytest.raises(DatasetError, match=r"blank\.csv: file has no header"):
        load_orange_wide(blank, empty)
    with pytest.raises(DatasetError, match=r"file not found"):
        load_orange_wide(tmp_path / "absent.data")


def test_orange_labels_file_errors(orange: tuple[Path, Path, int], tmp_path: Path) -> None:
    data, labels, _ = orange
    values = labels.read_text().split()
    bad_value = tmp_path / "bad_value.labels"
    bad_value.write_text("\n".join([*values[:6], "2", *values[7:]]) + "\n")
    short = tmp_path / "short.labels"
    short.write_text("\n".join(values[:-3]) + "\n")
    empty = tmp_path / "empty.labels"
    empty.write_text("")
    all_negative = tmp_path / "negative.labels"
    all_negative.write_text("-1\n" * ORANGE_ROWS)
    all_positive = tmp_path / "positive.labels"
    all_positive.write_text("1\n" * ORANGE_ROWS)

    with pytest.raises(
        DatasetError, match=r"bad_value\.labels: label '2' on line 7 not understood \(expected -1 or 1\)"
    ):
        load_orange_wide(data, bad_value)
    with pytest.raises(DatasetError, match=rf"short\.labels: {ORANGE_ROWS - 3} labels but the data file has 3000 rows"):
        load_orange_wide(data, short)
    with pytest.raises(DatasetError, match=r"empty\.labels: file is empty"):
        load_orange_wide(data, empty)
    with pytest.raises(DatasetError, match=r"no positives \(1\) in 3000 rows"):
        load_orange_wide(data, all_negative)
    with pytest.raises(DatasetError, match=r"no negatives \(0\) in 3000 rows"):
        load_orange_wide(data, all_positive)
    with pytest.raises(DatasetError, match=r"absent\.labels: file not found"):
        load_orange_wide(data, tmp_path / "absent.labels")


@pytest.mark.parametrize(
    ("edit", "labels_file", "options", "message"),
    [
        (lambda rows: [row[:-1] for row in rows], False, {}, r"missing columns: churn or label \(or give a labels"),
        (lambda rows: rows, True, {}, r"has a label column 'churn' and a labels file was given; give one"),
        (
            set_value("churn", 4, "yes"),
            False,
            {},
            r"churn value 'yes' on line 5 not understood \(expected 1, -1 or 0\)",
        ),
        (
            lambda rows: [[v for i, v in enumerate(row) if i not in (4, 5, 6, 199)] for row in rows],
            False,
            {},
            r"missing columns: Var5–Var7, Var200$",
        ),
        (lambda rows: rows, False, {"id_column": "msisdn"}, r"missing columns: msisdn$"),
        (
            lambda rows: [[*row, "x"] for row in rows],
            False,
            {},
            r"unexpected columns: x \(the layout is Var1–Var230",
        ),
        (set_value("Var13", 8, "12O"), False, {}, r"Var13 value '12O' on line 9 not understood \(expected a number"),
        (lambda rows: rows, False, {"kind": "upselling"}, r"kind 'upselling' is not one of churn, bad_debt"),
    ],
)
def test_orange_bad_files_name_what_is_wrong(
    tmp_path: Path, edit, labels_file: bool, options: dict[str, str], message: str
) -> None:
    data = tmp_path / "inline.tsv"
    write_orange_sample(data, None, 60, seed=2)
    bad = rewrite(data, tmp_path / "bad.tsv", edit, "\t")
    labels = tmp_path / "ok.labels"
    labels.write_text("1\n-1\n" * 30)

    with pytest.raises(DatasetError, match=message):
        load_orange_wide(bad, labels if labels_file else None, **options)
