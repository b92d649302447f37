"""A registered model made ready to score: the LightGBM booster, the isotonic map from its raw probability to a
calibrated one, and the cut-offs of the risk bands. Training, promotion and scoring all predict through it, so a
model is judged by the numbers it will give in service."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

BANDS = ("high", "medium", "low")
"""高危, 中危, 低危."""


class ModelCorrupt(Exception):
    """The stored booster does not match its checksum or LightGBM cannot read it."""


def pack(booster: lgb.Booster) -> tuple[bytes, str]:
    """The booster as stored in the registry: its model text, gzip-compressed, and the text's SHA-256."""
    text = booster.model_to_string().encode()
    return gzip.compress(text, compresslevel=6, mtime=0), hashlib.sha256(text).hexdigest()


def unpack(artifact: bytes, sha256: str) -> lgb.Booster:
    try:
        text = gzip.decompress(artifact)
    except (OSError, EOFError) as exc:
        raise ModelCorrupt(f"the stored model is not a gzip stream ({exc})") from exc
    if hashlib.sha256(text).hexdigest() != sha256:
        raise ModelCorrupt("the stored model does not match its checksum")
    try:
        return lgb.Booster(model_str=text.decode())
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise ModelCorrupt(f"LightGBM cannot read the stored model ({exc})") from exc


@dataclass
class Calibration:
    """Isotonic regression as its step function: raw probability `x` (increasing) → calibrated `y`."""

    x: np.ndarray
    y: np.ndarray

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if len(self.x) == 0:
            return raw
        return np.interp(raw, self.x, self.y)

    def wire(self) -> dict[str, Any]:
        return {"x": [float(v) for v in self.x], "y": [float(v) for v in self.y]}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Calibration:
        return cls(np.asarray(data.get("x", []), dtype=np.float64), np.asarray(data.get("y", []), dtype=np.float64))


@dataclass
class Bands:
    """A calibrated probability at or above `high` is 高危, at or above `medium` 中危, else 低危."""

    high: float
    medium: float

    def of(self, probability: np.ndarray) -> np.ndarray:
        return np.where(probability >= self.high, "high", np.where(probability >= self.medium, "medium", "low"))

    def wire(self) -> dict[str, float]:
        return {"high": self.high, "medium": self.medium}


Rows = pd.DataFrame | np.ndarray
"""Rows to score: a frame with (at least) the model's features, or the model's matrix itself (`Predictor.values`)."""


@dataclass
class Predictor:
    version: str
    kind: str
    features: list[str]
    booster: lgb.Booster
    calibration: Calibration
    bands: Bands
    horizon_days: int = 0
    """What a score means: the chance of the outcome within this many days of it."""

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's columns, in its order; a feature the frame lacks is a ValueError naming it."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"features the model needs are missing: {', '.join(missing)}")
        return frame[self.features]

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's columns as one float64 matrix: what LightGBM reads, converted once when a row is both scored
        and explained."""
        return self.matrix(frame).to_numpy(dtype=np.float64)

    def _input(self, rows: Rows) -> Rows:
        return rows if isinstance(rows, np.ndarray) else self.matrix(rows)

    def raw(self, rows: Rows, *, threads: int = 0) -> np.ndarray:
        return np.asarray(self.booster.predict(self._input(rows), num_threads=threads), dtype=np.float64)

    def probability(self, rows: Rows, *, threads: int = 0) -> np.ndarray:
        return np.clip(self.calibration.apply(self.raw(rows, threads=threads)), 0.0, 1.0)

    def contributions(self, rows: Rows, *, threads: int = 0) -> np.ndarray:
        """Per row and feature, the feature's push on the log-odds (TreeSHAP, LightGBM's `pred_contrib`); the last
        column (the expected value) dropped."""
        out = self.booster.predict(self._input(rows), pred_contrib=True, num_threads=threads)
        return np.asarray(out, dtype=np.float64)[:, :-1]
