"""Small files in the exact layouts of the public IBM Telco and Orange (KDD Cup 2009) churn datasets, with a churn
relationship planted in them, so the loader tests need neither download nor licence and can check that a model
trained on the loaded frame finds what was planted. Deterministic for a seed."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

IBM_HEADER = [
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
]

IBM_ADDONS = ("OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies")
PAYMENT_METHODS = ("Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)")

ORANGE_EMPTY = [
    "Var8",
    "Var15",
    "Var20",
    "Var31",
    "Var32",
    "Var39",
    "Var42",
    "Var48",
    "Var52",
    "Var55",
    "Var79",
    "Var141",
    "Var167",
    "Var169",
    "Var175",
    "Var185",
    "Var209",
    "Var230",
]
"""The columns that have no value at all in the real orange_small_train.data."""

ORANGE_SIGNAL = ("Var73", "Var113", "Var126", "Var218", "Var226")
"""Where the Orange sample plants churn: tenure-like Var73 low, Var113 high, Var126 missing or low (as in the real
data, where Var126 is among the strongest churn features), Var218 "cJvF" and three of Var226's levels."""

ORANGE_HIGH_CARDINALITY = ("Var199", "Var214", "Var217")
"""Noise codes with about one level per three rows, like the real columns with thousands of levels."""


def _money(value: float) -> str:
    """As the IBM file prints charges: two decimals at most, no trailing zeros ("42.3", "1889.5")."""
    return repr(round(float(value), 2))


def write_ibm_telco_sample(path: Path, rows: int, seed: int) -> int:
    """WA_Fn-UseC_-Telco-Customer-Churn.csv as IBM ships it: comma-separated, unquoted, LF line ends, a single
    space as TotalCharges for a customer with tenure 0 (who never churns, as in the real file). Churn rises with a
    month-to-month contract, fibre optic, electronic-check payment and short tenure. Returns how many churned."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], size=rows, p=[0.55, 0.21, 0.24])
    reach = np.where(contract == "Month-to-month", 30, np.where(contract == "One year", 55, 70))
    tenure = np.clip(rng.integers(1, 73, size=rows) * reach // 72, 1, 72)
    tenure[rng.random(rows) < 0.02] = 0
    internet = rng.choice(["DSL", "Fiber optic", "No"], size=rows, p=[0.34, 0.44, 0.22])
    payment = rng.choice(PAYMENT_METHODS, size=rows, p=[0.34, 0.23, 0.22, 0.21])
    phone = rng.random(rows) < 0.9
    senior = rng.random(rows) < 0.16
    logit = (
        -2.6
        + 1.6 * (contract == "Month-to-month")
        - 1.0 * (contract == "Two year")
        + 1.1 * (internet == "Fiber optic")
        + 0.9 * (payment == "Electronic check")
        - 0.045 * tenure
        + 0.3 * senior
        + rng.normal(0, 0.3, size=rows)
    )
    churn = (rng.random(rows) < 1 / (1 + np.exp(-logit))) & (tenure > 0)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    numbers = rng.choice(10_000, size=rows, replace=False)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(IBM_HEADER)
        for row in range(rows):
            addons = {
                name: "No internet service" if internet[row] == "No" else ("Yes" if rng.random() < 0.4 else "No")
                for name in IBM_ADDONS
            }
            monthly = (
                (20.0 if phone[row] else 0.0)
                + {"DSL": 25.0, "Fiber optic": 50.0, "No": 0.0}[internet[row]]
                + 6.0 * sum(value == "Yes" for value in addons.values())
                + rng.uniform(-1.5, 1.5)
            )
            monthly = max(monthly, 18.25)
            total = _money(monthly * tenure[row] * rng.uniform(0.95, 1.05)) if tenure[row] else " "
            yes_no = {True: "Yes", False: "No"}
            writer.writerow(
                [
                    f"{numbers[row]:04d}-{''.join(rng.choice(letters, size=5))}",
                    rng.choice(["Female", "Male"]),
                    int(senior[row]),
                    yes_no[bool(rng.random() < 0.48)],
                    yes_no[bool(rng.random() < 0.3)],
                    tenure[row],
                    yes_no[bool(phone[row])],
                    yes_no[bool(rng.random() < 0.45)] if phone[row] else "No phone service",
                    internet[row],
                    *addons.values(),
                    contract[row],
                    yes_no[bool(rng.random() < 0.59)],
                    payment[row],
                    _money(monthly),
                    total,
                    yes_no[bool(churn[row])],
                ]
            )
    return int(churn.sum())


def _codes(rng: np.random.Generator, count: int) -> np.ndarray:
    """Level names shaped like Orange's scrambled codes ("fXVEsaq", "RAYp")."""
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"))
    names = {"".join(rng.choice(alphabet, size=rng.integers(4, 12))) for _ in range(count * 2)}
    return np.array(sorted(names)[:count], dtype=object)


def write_orange_sample(data_path: Path, labels_path: Path | None, rows: int, seed: int) -> int:
    """orange_small_train.data as distributed: a tab-separated header Var1…Var230, tab-separated rows, empty fields
    for missing values, Var1–Var190 numeric (integers or decimals), Var191–Var230 codes; and the labels one `-1`/`1`
    per line, as orange_small_train_churn.labels. Most columns are mostly empty and `ORANGE_EMPTY` entirely so; churn
    is planted in `ORANGE_SIGNAL`, everything else is noise. With `labels_path` None the labels go into the data
    file as a last column `churn` instead. Returns how many churned."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for number in range(1, 191):
        name = f"Var{number}"
        missing = rng.choice([0.02, 0.15, 0.7, 0.98])
        values = rng.lognormal(rng.uniform(0, 6), 1.0, size=rows)
        text = np.array([str(int(v)) for v in values] if number % 3 else [f"{v:.2f}" for v in values], dtype=object)
        text[rng.random(rows) < missing] = ""
        columns[name] = text
    for number in range(191, 231):
        name = f"Var{number}"
        count = rows // 3 if name in ORANGE_HIGH_CARDINALITY else int(rng.choice([2, 3, 8, 25]))
        levels = _codes(rng, count)
        text = levels[rng.integers(0, len(levels), size=rows)]
        text[rng.random(rows) < rng.choice([0.01, 0.3, 0.9])] = ""
        columns[name] = text

    tenure = rng.integers(0, 60, size=rows)
    columns["Var73"] = np.array([str(4 * t) for t in tenure], dtype=object)
    spend = rng.normal(0, 1, size=rows)
    columns["Var113"] = np.array([f"{500_000 * s:.2f}" for s in spend], dtype=object)
    var126 = rng.integers(-30, 60, size=rows).astype(float)
    var126_missing = rng.random(rows) < 0.28
    columns["Var126"] = np.where(var126_missing, "", np.array([str(int(v)) for v in var126], dtype=object))
    plan = rng.random(rows) < 0.5
    columns["Var218"] = np.where(plan, "cJvF", "UYBR").astype(object)
    region_levels = _codes(rng, 23)
    region = rng.integers(0, 23, size=rows)
    columns["Var226"] = region_levels[region]
    logit = (
        -2.2
        - 0.06 * tenure
        + 1.0 * spend
        + 1.5 * var126_missing
        - 0.02 * np.where(var126_missing, 0, var126)
        + 1.2 * plan
        + 1.6 * np.isin(region, [3, 11, 17])
    )
    for name in ORANGE_EMPTY:
        columns[name] = np.full(rows, "", dtype=object)
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    labels = np.where(churn, "1", "-1")

    header = [f"Var{number}" for number in range(1, 231)]
    if labels_path is None:
        header.append("churn")
        columns["churn"] = labels
    table = [columns[name] for name in header]
    with data_path.open("w", encoding="utf-8", newline="") as out:
        out.write("\t".join(header) + "\n")
        for row in range(rows):
            out.write("\t".join(column[row] for column in table) + "\n")
    if labels_path is not None:
        labels_path.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return int(churn.sum())
