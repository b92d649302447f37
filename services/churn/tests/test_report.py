"""The model report: real PNGs on disk, and an HTML page that carries the same images inside it so it opens with
no network and no sibling files."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_churn.domain import registry
from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.report import render_stored, write_report
from crm_churn.domain.training import TrainedModel, TrainParams, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHARTS = ("roc.png", "lift.png", "calibration.png", "importance.png")


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    """Churn driven by complaints over four monthly snapshots, with a few idle features for the importance chart."""
    rng = np.random.default_rng(11)
    customers, snapshots = 2000, 4
    n = customers * snapshots
    complaints = rng.poisson(0.5, n).astype(np.float32)
    label = (rng.random(n) < 1 / (1 + np.exp(-(-3.0 + 1.2 * complaints)))).astype(np.int8)
    features = pd.DataFrame(
        {"complaints_90d": complaints} | {f"idle_{i}": rng.normal(size=n).astype(np.float32) for i in range(3)}
    )
    ts = TrainingSet(
        features=features,
        label=label,
        customer_id=np.tile(np.arange(customers).astype(str), snapshots),
        as_of=np.repeat((np.datetime64("2024-01", "M") + np.arange(snapshots)).astype("datetime64[D]"), customers),
        source="synthetic",
        kind="churn",
        horizon_days=30,
    )
    return train(ts, TrainParams(learning_rate=0.1, max_rounds=100, num_threads=1), version="2024.05-r1")


def test_the_report_writes_valid_pngs_and_an_html_that_embeds_them(model: TrainedModel, tmp_path: Path) -> None:
    path = write_report(model, tmp_path / "reports" / "churn")
    assert path == tmp_path / "reports" / "churn" / "report.html"
    page = path.read_text(encoding="utf-8")
    for name in CHARTS:
        png = (path.parent / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 5_000, name
        assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page, name
        assert f'href="{name}"' in page


def test_the_report_shows_the_metrics_and_the_split_and_loads_nothing_from_outside(
    model: TrainedModel, tmp_path: Path
) -> None:
    page = write_report(model, tmp_path).read_text(encoding="utf-8")
    assert "离网预测模型 2024.05-r1" in page
    assert f"{model.metrics['roc_auc']:.4f}" in page
    assert f"{model.metrics['top_decile_lift']:.4f}" in page
    assert model.validation["fingerprint"] in page
    assert "2024-01-01 – 2024-03-01" in page
    assert "2024-04-01" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page


def test_a_registered_model_renders_the_same_report_from_its_row(model: TrainedModel, tmp_path: Path) -> None:
    session = Session()
    row = registry.register(session, model, datetime(2024, 5, 2, tzinfo=UTC))  # type: ignore[arg-type]
    for column in ("metrics", "training", "validation", "bands"):
        setattr(row, column, json.loads(json.dumps(getattr(row, column))))

    page = render_stored(row)
    on_disk = write_report(model, tmp_path).read_text(encoding="utf-8")
    assert session.added == [row]
    assert page.count("data:image/png;base64,") == len(CHARTS)
    assert f"{model.metrics['roc_auc']:.4f}" in page
    assert model.validation["fingerprint"] in page
    assert 'href="' not in page
    assert _text(page) == _text(on_disk)


class Session:
    """All `registry.register` asks of a database session."""

    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, row: object) -> None:
        self.added.append(row)


def _text(page: str) -> str:
    """The page without its images and links: what the reader reads."""
    return re.sub(r" \(<a href=[^)]*\)", "", re.sub(r"base64,[A-Za-z0-9+/=]+", "", page))
