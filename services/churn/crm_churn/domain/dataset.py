"""A training set: one row per customer and snapshot, the features known at the snapshot, and the label that the
following horizon gave. Built from the feature store (`domain.training_set`) or loaded from a file
(`domain.loaders`); what `domain.training` learns from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("churn", "bad_debt")
"""离网 (a customer's lines all terminated or ported out within the horizon) and 坏账 (a bill more than 90 days
overdue within the horizon)."""


@dataclass
class TrainingSet:
    """`features`: one column per feature, float32 (NaN when unknown) or pandas `category`; `label`: 0/1 per row;
    `as_of`: each row's snapshot day (datetime64[D]), or None for a file without time, which is then split at random;
    `customer_id`: whose row it is."""

    features: pd.DataFrame
    label: np.ndarray
    customer_id: np.ndarray
    as_of: np.ndarray | None
    source: str
    kind: str
    horizon_days: int

    def __post_init__(self) -> None:
        n = len(self.features)
        if len(self.label) != n or len(self.customer_id) != n or (self.as_of is not None and len(self.as_of) != n):
            raise ValueError("features, label, customer_id and as_of must have one entry per row")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")

    @property
    def rows(self) -> int:
        return len(self.features)

    @property
    def positives(self) -> int:
        return int(self.label.sum())

    def subset(self, mask: np.ndarray) -> TrainingSet:
        return TrainingSet(
            features=self.features.loc[mask].reset_index(drop=True),
            label=self.label[mask],
            customer_id=self.customer_id[mask],
            as_of=None if self.as_of is None else self.as_of[mask],
            source=self.source,
            kind=self.kind,
            horizon_days=self.horizon_days,
        )

    def fingerprint(self) -> str:
        """Names these rows (customers, snapshots, labels): two models compared on sets with the same fingerprint
        were compared on the same validation set."""
        digest = hashlib.sha256()
        digest.update("\n".join(map(str, self.customer_id)).encode())
        if self.as_of is not None:
            digest.update(np.asarray(self.as_of, dtype="datetime64[D]").astype(np.int64).tobytes())
        digest.update(np.asarray(self.label, dtype=np.int8).tobytes())
        return digest.hexdigest()
