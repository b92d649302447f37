"""The model report a data scientist or retention manager opens before promoting a model: one HTML file that
needs nothing else (charts embedded, no CDN, readable offline on an operator's intranet), with the charts also
written as PNGs for slides and tickets."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from crm_churn.domain.training import TrainedModel
from crm_churn.models import Model

TOP_FEATURES = 20
KIND_TITLES = {"churn": "离网预测模型", "bad_debt": "坏账预测模型"}
METRIC_LABELS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC (average precision)"),
    ("top_decile_lift", "Top-decile lift (前10%提升度)"),
    ("brier", "Brier score"),
    ("log_loss", "Log loss"),
    ("base_rate", "Base rate (基准率)"),
    ("rows", "Validation rows"),
    ("positives", "Validation positives"),
    ("best_iteration", "Best iteration"),
)


@dataclass
class _Evidence:
    """What a report shows, whether it comes from a training just done or from a model row in the registry."""

    version: str
    kind: str
    metrics: dict[str, Any]
    training: dict[str, Any]
    validation: dict[str, Any]
    bands: dict[str, float]
    importance: list[dict[str, Any]]
    curves: dict[str, Any]
    seconds: float


def write_report(model: TrainedModel, directory: Path) -> Path:
    evidence = _Evidence(
        version=model.predictor.version,
        kind=model.predictor.kind,
        metrics=model.metrics,
        training=model.training,
        validation=model.validation,
        bands=model.predictor.bands.wire(),
        importance=model.importance,
        curves=model.curves,
        seconds=model.seconds,
    )
    directory.mkdir(parents=True, exist_ok=True)
    images = _charts(evidence)
    for name, (_, png) in images.items():
        (directory / name).write_bytes(png)
    path = directory / "report.html"
    path.write_text(_html(evidence, images, linked=True), encoding="utf-8")
    return path


def render_stored(model: Model) -> str:
    """The same report for a model in the registry, drawn again from what `registry.register` kept, so the API
    serves it without files on disk."""
    metrics = model.metrics or {}
    training = model.training or {}
    evidence = _Evidence(
        version=model.version,
        kind=model.kind,
        metrics=metrics,
        training=training,
        validation=model.validation or {},
        bands=model.bands or {},
        importance=metrics.get("importance", []),
        curves=metrics.get("curves", {}),
        seconds=float(training.get("seconds", 0.0)),
    )
    return _html(evidence, _charts(evidence), linked=False)


def _charts(evidence: _Evidence) -> dict[str, tuple[str, bytes]]:
    charts = {
        "roc.png": ("ROC curve", _roc),
        "lift.png": ("Lift by decile", _lift),
        "calibration.png": ("Calibration", _calibration),
        "importance.png": ("Feature importance", _importance),
    }
    images = {}
    for name, (title, draw) in charts.items():
        buffer = io.BytesIO()
        draw(evidence).savefig(buffer, format="png", dpi=100)
        images[name] = (title, buffer.getvalue())
    return images


def _figure() -> tuple[Figure, Any]:
    """A Figure without pyplot: no global backend switch, no figure registry to leak in a long-running service."""
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    return figure, figure.subplots()


def _roc(evidence: _Evidence) -> Figure:
    figure, axes = _figure()
    roc = evidence.curves["roc"]
    axes.plot(roc["fpr"], roc["tpr"], color="tab:blue", label=f"model (AUC {evidence.metrics['roc_auc']:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1))
    axes.set_title("ROC curve (validation)")
    axes.legend(loc="lower right")
    return figure


def _lift(evidence: _Evidence) -> Figure:
    figure, axes = _figure()
    lift = evidence.curves["lift"]
    deciles = range(1, len(lift) + 1)
    axes.bar(deciles, lift, color="tab:orange")
    axes.axhline(1.0, color="grey", linestyle="--", label="base rate")
    axes.set(xlabel="Decile by score (1 = highest risk)", ylabel="Lift", xticks=list(deciles))
    axes.set_title("Lift by decile (validation)")
    axes.legend(loc="upper right")
    return figure


def _calibration(evidence: _Evidence) -> Figure:
    figure, axes = _figure()
    bins = evidence.curves["calibration"]
    predicted = [b["mean_predicted"] for b in bins]
    observed = [b["observed_rate"] for b in bins]
    top = max([*predicted, *observed, 0.01]) * 1.05
    axes.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    axes.plot(predicted, observed, marker="o", color="tab:green", label="model, by decile")
    axes.set(xlabel="Mean predicted probability", ylabel="Observed rate", xlim=(0, top), ylim=(0, top))
    axes.set_title("Calibration (validation)")
    axes.legend(loc="upper left")
    return figure


def _importance(evidence: _Evidence) -> Figure:
    top = evidence.importance[:TOP_FEATURES][::-1]
    figure = Figure(figsize=(6.4, 1.2 + 0.3 * max(len(top), 1)), layout="constrained")
    axes = figure.subplots()
    axes.barh([entry["feature"] for entry in top], [entry["gain_share"] for entry in top], color="tab:purple")
    axes.set(xlabel="Share of total gain")
    axes.set_title(f"Feature importance (top {min(TOP_FEATURES, len(evidence.importance))}, gain)")
    return figure


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(label)}</th><td>{_number(value)}</td></tr>" for label, value in pairs)


def _html(evidence: _Evidence, images: dict[str, tuple[str, bytes]], *, linked: bool) -> str:
    """`linked`: the PNGs lie beside the page (a report on disk), so each chart also links to its file."""
    training, validation, bands = evidence.training, evidence.validation, evidence.bands
    early_stopping = training.get("early_stopping", {})
    title = f"{KIND_TITLES.get(evidence.kind, evidence.kind)} {evidence.version}"
    metrics = _rows([(label, evidence.metrics[key]) for key, label in METRIC_LABELS if key in evidence.metrics])
    start, end = training.get("window_start"), training.get("window_end")
    summary = _rows(
        [
            ("Source (数据来源)", training.get("source", "—")),
            ("Split", training.get("split", "—")),
            ("Training window (训练窗口)", f"{start} – {end}" if start else "—"),
            ("Training snapshots", ", ".join(training.get("snapshots", [])) or "—"),
            ("Horizon (预测期, days)", training.get("horizon_days", "—")),
            ("Training rows / positives", f"{training.get('rows', '—')} / {training.get('positives', '—')}"),
            ("Rows dropped: horizon overlaps validation", training.get("overlapping_rows_dropped", "—")),
            ("Early-stopping snapshots", ", ".join(early_stopping.get("snapshots", [])) or "random 20%"),
            ("Validation snapshots (验证期)", ", ".join(validation.get("snapshots", [])) or "random 20%"),
            ("Validation rows / positives", f"{validation.get('rows', '—')} / {validation.get('positives', '—')}"),
            ("Validation fingerprint", validation.get("fingerprint", "—")),
            ("高危 band: probability ≥", bands.get("high", "—")),
            ("中危 band: probability ≥", bands.get("medium", "—")),
            ("Training time (s)", round(evidence.seconds, 1)),
        ]
    )
    lift_by_decile = evidence.metrics.get("lift_by_decile", [])
    deciles = "".join(f"<th>{d}</th>" for d in range(1, len(lift_by_decile) + 1))
    lift = "".join(f"<td>{value:.2f}</td>" for value in lift_by_decile)
    figures = "\n".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}"
        + (f' (<a href="{name}">{name}</a>)' if linked else "")
        + "</figcaption></figure>"
        for name, (caption, png) in images.items()
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
th {{ background: #f4f4f4; font-weight: normal; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}
img {{ max-width: 640px; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Validation metrics (验证集指标, calibrated probabilities)</h2>
<table>
{metrics}
</table>
<h2>Lift by decile (按十分位提升度)</h2>
<table><tr>{deciles}</tr><tr>{lift}</tr></table>
<h2>Training and validation (训练与验证)</h2>
<table>
{summary}
</table>
<h2>Charts</h2>
{figures}
</body>
</html>
"""
