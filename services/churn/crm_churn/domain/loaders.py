"""Training sets from files an operator brings: the public IBM "Telco Customer Churn" CSV and the Orange / KDD Cup
2009 wide layout. Both datasets are cross-sectional (no snapshot day), so `as_of` is None and training splits them
at random. Bad input always ends in a `DatasetError` that names the file and what is wrong in it, never a bare
pandas exception, because an operator reads these messages, not a traceback."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from crm_churn.domain.dataset import KINDS, TrainingSet

LAYOUTS = ("ibm_telco", "orange_wide")

OTHER = "__other__"
"""The level a capped categorical gives every value outside its most frequent levels."""

HORIZON_DAYS = 30
"""Both public datasets label a customer who left within about a month of the observation."""

IBM_COLUMNS = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)

_YES_NO = {"Yes": 1.0, "No": 0.0}
_NO_PHONE = {**_YES_NO, "No phone service": 0.0}
_NO_INTERNET = {**_YES_NO, "No internet service": 0.0}

_IBM_FEATURES: tuple[tuple[str, str, Mapping[str, float] | tuple[str, ...] | None], ...] = (
    ("gender", "gender", ("Female", "Male")),
    ("SeniorCitizen", "senior_citizen", {"1": 1.0, "0": 0.0}),
    ("Partner", "partner", _YES_NO),
    ("Dependents", "dependents", _YES_NO),
    ("tenure", "tenure_months", None),
    ("PhoneService", "phone_service", _YES_NO),
    ("MultipleLines", "multiple_lines", _NO_PHONE),
    ("InternetService", "internet_service", ("No", "DSL", "Fiber optic")),
    ("OnlineSecurity", "online_security", _NO_INTERNET),
    ("OnlineBackup", "online_backup", _NO_INTERNET),
    ("DeviceProtection", "device_protection", _NO_INTERNET),
    ("TechSupport", "tech_support", _NO_INTERNET),
    ("StreamingTV", "streaming_tv", _NO_INTERNET),
    ("StreamingMovies", "streaming_movies", _NO_INTERNET),
    ("Contract", "contract", ("Month-to-month", "One year", "Two year")),
    ("PaperlessBilling", "paperless_billing", _YES_NO),
    (
        "PaymentMethod",
        "payment_method",
        ("Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"),
    ),
    ("MonthlyCharges", "monthly_charges", None),
    ("TotalCharges", "total_charges", None),
)
"""(file column, feature, how to read it): a mapping is a 0/1 flag; a tuple is a category with those levels, in that
order so codes never depend on the file; None is a number. "No phone service" and "No internet service" read as 0
(the customer does not have the add-on): `phone_service` and `internet_service` already say why, so the original
value stays recoverable, and six three-level categories would only repeat the `internet_service` split."""

ORANGE_VARIABLES = 230
ORANGE_NUMERIC = 190
"""Var1–Var190 are numeric and Var191–Var230 categorical in the KDD Cup 2009 small layout."""

_VAR = re.compile(r"Var(\d+)")
_LABEL_COLUMNS = ("churn", "label")
_LABEL_VALUES = {"1": 1, "+1": 1, "-1": 0, "0": 0}


class DatasetError(ValueError):
    """A file cannot become a training set; the message names the file and what is wrong with it."""


def detect_layout(path: str | Path) -> str:
    """The layout of a file from its header, so a `--file` needs no layout flag: "ibm_telco" or "orange_wide"."""
    path = _existing(path)
    header = _first_line(path)
    fields = [field.strip().strip('"') for field in header.split(",")]
    if "customerID" in fields and "Churn" in fields:
        return "ibm_telco"
    if any(_VAR.fullmatch(field.strip()) for field in header.split("\t")):
        return "orange_wide"
    raise DatasetError(
        f"{path}: header {header[:120]!r} is neither the IBM Telco layout (customerID,…,Churn) "
        "nor the Orange wide layout (Var1<TAB>…<TAB>Var230)"
    )


def load_ibm_telco(path: str | Path) -> TrainingSet:
    """The IBM "Telco Customer Churn" CSV (WA_Fn-UseC_-Telco-Customer-Churn.csv): one row per customer, `Churn`
    "Yes" for a customer who left within the last month, hence a 30-day horizon. A blank `TotalCharges` (a customer
    still in the first month, tenure 0) is unknown, not zero."""
    path = _existing(path)
    frame = _read(path, sep=",", dtype=str, keep_default_na=False)
    _require(path, frame.columns, IBM_COLUMNS)
    frame = frame.fillna("").apply(lambda column: column.str.strip())
    features = {}
    for column, name, reading in _IBM_FEATURES:
        if reading is None:
            features[name] = _numbers(path, frame[column], column)
        elif isinstance(reading, tuple):
            features[name] = _category(path, frame[column], column, reading)
        else:
            features[name] = _flags(path, frame[column], column, reading)
    label = _codes(path, frame["Churn"], "Churn", {"Yes": 1, "No": 0}, "Yes or No")
    return _training_set(
        path,
        pd.DataFrame(features),
        label,
        _ids(path, frame["customerID"], "customerID"),
        source="ibm_telco",
        kind="churn",
    )


def load_orange_wide(
    path: str | Path,
    labels: str | Path | None = None,
    *,
    kind: str = "churn",
    id_column: str | None = None,
    max_levels: int = 50,
) -> TrainingSet:
    """The Orange / KDD Cup 2009 small layout: tab-separated Var1–Var230, empty = missing. Labels come one `-1`/`1`
    per line from `labels` (as orange_small_train_churn.labels) or, without it, from a `churn` or `label` column
    (1/-1 or 1/0). Columns with no value at all are dropped (listed in `features.attrs["empty_columns"]`); a
    categorical with more than `max_levels` levels keeps its most frequent ones and reads the rest as `OTHER`, so a
    few thousand one-off codes cannot each become a split (`features.attrs["levels_folded"]` says how many levels
    each capped column folded; its categories are the levels kept, anything else scores as `OTHER`)."""
    if kind not in KINDS:
        raise DatasetError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if max_levels < 1:
        raise DatasetError(f"max_levels must be at least 1, not {max_levels}")
    path = _existing(path)
    header = [field.strip() for field in _first_line(path).split("\t")]
    while header and not header[-1]:
        header.pop()
    variables = [f"Var{number}" for number in range(1, ORANGE_VARIABLES + 1)]
    label_columns = [column for column in header if column.lower() in _LABEL_COLUMNS]
    _require(path, header, variables + ([id_column] if id_column else []), ranges=True)
    if labels is None and not label_columns:
        raise DatasetError(f"{path}: missing columns: {' or '.join(_LABEL_COLUMNS)} (or give a labels file)")
    if labels is not None and label_columns:
        raise DatasetError(f"{path}: has a label column {label_columns[0]!r} and a labels file was given; give one")
    if len(label_columns) > 1:
        raise DatasetError(f"{path}: more than one label column: {', '.join(label_columns)}")
    unexpected = [column for column in header if column not in {*variables, id_column, *label_columns}]
    if unexpected:
        raise DatasetError(
            f"{path}: unexpected columns: {', '.join(unexpected)} (the layout is Var1–Var{ORANGE_VARIABLES}, "
            "an optional id column and a churn/label column)"
        )
    frame = _read_orange(path, header, variables)
    folded = {}
    for column in variables[ORANGE_NUMERIC:]:
        frame[column], folded[column] = _cap(frame[column], max_levels)
    empty = [column for column in variables if frame[column].isna().all()]
    features = frame[[column for column in variables if column not in empty]]
    features.attrs["empty_columns"] = empty
    features.attrs["levels_folded"] = {column: count for column, count in folded.items() if count}
    if labels is None:
        label = _codes(path, frame[label_columns[0]].str.strip(), label_columns[0], _LABEL_VALUES, "1, -1 or 0")
    else:
        label = _labels_file(_existing(labels), len(frame))
    ids = (
        _ids(path, frame[id_column].str.strip(), id_column)
        if id_column
        else np.array([f"ROW-{row}" for row in range(1, len(frame) + 1)], dtype=object)
    )
    return _training_set(path, features, label, ids, source="orange_wide", kind=kind)


def _read_orange(path: Path, header: list[str], variables: list[str]) -> pd.DataFrame:
    """Numbers straight to float32 and codes to categories, so the real 50,000 × 230 file stays small; a number the
    fast path cannot parse is looked up again as text to name its column, value and line."""
    dtypes = {column: "float32" for column in variables[:ORANGE_NUMERIC]}
    dtypes |= {column: "category" for column in variables[ORANGE_NUMERIC:]}
    dtypes |= {column: str for column in header if column not in dtypes}
    options = {"sep": "\t", "keep_default_na": False, "na_values": [""], "index_col": False}
    try:
        return _read(path, dtype=dtypes, **options)
    except DatasetError:
        raise
    except ValueError as exc:
        text = _read(path, dtype=str, usecols=variables[:ORANGE_NUMERIC], **options)
        for column in variables[:ORANGE_NUMERIC]:
            _numbers(path, text[column].fillna("").str.strip(), column)
        raise DatasetError(f"{path}: cannot be read as tab-separated text: {exc}") from exc


def _cap(column: pd.Series, max_levels: int) -> tuple[pd.Categorical, int]:
    """The column with its levels sorted (codes independent of row order) and, past `max_levels`, all but the most
    frequent (ties by name) folded into `OTHER`; and how many levels were folded."""
    counts = column.value_counts(sort=False)
    counts = counts[counts > 0].sort_index().sort_values(ascending=False, kind="stable")
    kept = sorted(counts.index[:max_levels])
    folded = max(len(counts) - max_levels, 0)
    levels = [*kept, OTHER] if folded else kept
    position = {level: code for code, level in enumerate(levels)}
    other = position.get(OTHER, -1)
    remap = np.array([position.get(level, other) for level in column.cat.categories] + [-1], dtype=np.int64)
    return pd.Categorical.from_codes(remap[column.cat.codes.to_numpy()], categories=levels), folded


def _labels_file(path: Path, rows: int) -> np.ndarray:
    """One -1/1 per line, in the order of the data rows; trailing blank lines are not rows."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DatasetError(f"{path}: file is empty")
    label = np.empty(len(lines), dtype=np.int8)
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if value not in _LABEL_VALUES:
            raise DatasetError(f"{path}: label {value!r} on line {number} not understood (expected -1 or 1)")
        label[number - 1] = _LABEL_VALUES[value]
    if len(label) != rows:
        raise DatasetError(f"{path}: {len(label)} labels but the data file has {rows} rows")
    return label


def _training_set(
    path: Path, features: pd.DataFrame, label: np.ndarray, ids: np.ndarray, *, source: str, kind: str
) -> TrainingSet:
    positives = int(label.sum())
    if positives == 0 or positives == len(label):
        which = "no positives (1)" if positives == 0 else "no negatives (0)"
        raise DatasetError(f"{path}: the labels have {which} in {len(label)} rows; a model needs both")
    return TrainingSet(
        features=features.reset_index(drop=True),
        label=label.astype(np.int8),
        customer_id=ids,
        as_of=None,
        source=source,
        kind=kind,
        horizon_days=HORIZON_DAYS,
    )


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: file is empty")
    return path


def _first_line(path: Path) -> str:
    """The header: the first line that is not blank, as pandas reads it."""
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for line in lines:
                if line.strip("\r\n"):
                    return line.rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read as text: {exc}") from exc
    raise DatasetError(f"{path}: file has no header")


def _read(path: Path, **options: object) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig", **options)
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"{path}: file has no header") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        separator = "tab" if options.get("sep") == "\t" else "comma"
        raise DatasetError(f"{path}: cannot be read as {separator}-separated text: {exc}") from exc
    if frame.empty:
        raise DatasetError(f"{path}: file has a header but no data rows")
    return frame


def _require(path: Path, present: Iterable[str], required: Iterable[str], *, ranges: bool = False) -> None:
    have = set(present)
    missing = [column for column in required if column not in have]
    if missing:
        listed = _var_ranges(missing) if ranges else ", ".join(missing)
        raise DatasetError(f"{path}: missing columns: {listed}")


def _var_ranges(columns: list[str]) -> str:
    """Var columns as runs ("Var1–Var190, Var200"), so a file of another layout gets a readable message."""
    runs: list[list[str]] = []
    previous = None
    for column in columns:
        match = _VAR.fullmatch(column)
        number = int(match.group(1)) if match else None
        if runs and number is not None and previous is not None and number == previous + 1:
            runs[-1][1:] = [column]
        else:
            runs.append([column])
        previous = number
    return ", ".join("–".join(run) for run in runs)


def _line(path: Path, row: int) -> int:
    """The line of data row `row` (0-based), counting as pandas does: blank lines are not rows. Only called for an
    error, so the happy path never reads the file twice."""
    seen = -1
    with path.open(encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip("\r\n"):
                if seen == row:
                    return number
                seen += 1
    return -1


def _not_understood(path: Path, values: pd.Series, bad: pd.Series, column: str, expected: str) -> DatasetError:
    row = int(np.flatnonzero(bad.to_numpy())[0])
    return DatasetError(
        f"{path}: {column} value {values.iloc[row]!r} on line {_line(path, row)} not understood (expected {expected})"
    )


def _numbers(path: Path, values: pd.Series, column: str) -> np.ndarray:
    parsed = pd.to_numeric(values.where(values != ""), errors="coerce")
    bad = parsed.isna() & (values != "")
    if bad.any():
        raise _not_understood(path, values, bad, column, "a number or blank")
    return parsed.to_numpy(dtype=np.float32, na_value=np.nan)


def _flags(path: Path, values: pd.Series, column: str, mapping: Mapping[str, float]) -> np.ndarray:
    bad = ~values.isin([*mapping, ""])
    if bad.any():
        raise _not_understood(path, values, bad, column, ", ".join(mapping) + " or blank")
    return values.map(dict(mapping)).to_numpy(dtype=np.float32, na_value=np.nan)


def _category(path: Path, values: pd.Series, column: str, levels: tuple[str, ...]) -> pd.Categorical:
    bad = ~values.isin([*levels, ""])
    if bad.any():
        raise _not_understood(path, values, bad, column, ", ".join(levels) + " or blank")
    return pd.Categorical(values.where(values != ""), categories=list(levels))


def _codes(path: Path, values: pd.Series, column: str, mapping: Mapping[str, int], expected: str) -> np.ndarray:
    """A label column: every row must say, a blank is as wrong as a typo."""
    values = values.fillna("")
    bad = ~values.isin(list(mapping))
    if bad.any():
        raise _not_understood(path, values, bad, column, expected)
    return values.map(dict(mapping)).to_numpy(dtype=np.int8)


def _ids(path: Path, values: pd.Series, column: str) -> np.ndarray:
    values = values.fillna("")
    blank = values == ""
    if blank.any():
        raise _not_understood(path, values, blank, column, "an id")
    duplicated = values.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DatasetError(f"{path}: {column} {values.iloc[row]!r} on line {_line(path, row)} repeats an earlier row")
    return values.to_numpy(dtype=object)
