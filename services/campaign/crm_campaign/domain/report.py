"""The campaign report a marketing manager opens (活动效果评估报告): one HTML page that needs nothing else (charts
embedded as PNG, no CDN, readable on an operator's intranet) — treatment against control, the uplift with its
interval, what it earned and cost."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from matplotlib.figure import Figure

from crm_campaign.domain.attribution import Report
from crm_campaign.domain.evaluation import Uplift
from crm_campaign.models import Campaign

TREATED, CONTROL = "#1f77b4", "#999999"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode()


def _rates(title: str, uplift: Uplift, what: str) -> str:
    """Both groups' rates side by side, and the difference with its interval."""
    figure = Figure(figsize=(8, 3.2), layout="constrained")
    groups, difference = figure.subplots(1, 2, width_ratios=(2, 1))
    groups.bar(["treatment", "control"], [uplift.treatment_rate, uplift.control_rate], color=[TREATED, CONTROL])
    groups.set_ylabel(what)
    groups.set_title(title)
    error = [[uplift.uplift - uplift.ci_low], [uplift.ci_high - uplift.uplift]]
    difference.errorbar([0], [uplift.uplift], yerr=error, fmt="o", color=TREATED, capsize=8)
    difference.axhline(0, color=CONTROL, linewidth=1)
    difference.set_xticks([0], [f"uplift, {uplift.confidence:.0%} CI"])
    difference.set_title("treatment − control")
    return _png(figure)


def _fen(value: int | None) -> str:
    return "—" if value is None else f"{value / 100:,.2f} yuan"


def _uplift_rows(label: str, u: Uplift | None) -> str:
    if u is None:
        return f"<tr><th>{html.escape(label)}</th><td colspan=2>no comparison: a group is empty</td></tr>"
    p = "—" if u.p_value is None else f"{u.p_value:.4f}"
    verdict = "significant" if u.significant else "not significant"
    return (
        f"<tr><th>{html.escape(label)}</th><td>{u.treatment_rate:.2%} vs {u.control_rate:.2%}</td>"
        f"<td>{u.uplift:+.2%} [{u.ci_low:+.2%}, {u.ci_high:+.2%}], p = {p} ({verdict})</td></tr>"
    )


def _offer_rows(report: Report) -> str:
    """Each offer's take-up in both groups, its uplift and what it earned against what it cost."""
    rows = []
    for o in report.offers:
        u = o.response
        uplift = "—" if u is None else f"{u.uplift:+.2%} [{u.ci_low:+.2%}, {u.ci_high:+.2%}]"
        roi = "—" if o.roi is None else f"{o.roi:.2%}"
        rows.append(
            f"<tr><th>{html.escape(o.code)}</th><td>{html.escape(o.name)}</td><td>{o.contacted:,}</td>"
            f"<td>{o.delivered:,}</td><td>{o.treatment_responded:,}</td><td>{o.control_responded:,}</td>"
            f"<td>{uplift}</td><td>{_fen(o.incremental_revenue_fen)}</td><td>{_fen(o.cost_fen)}</td><td>{roi}</td></tr>"
        )
    if not rows:
        return ""
    head = (
        "<tr><th>offer 优惠</th><th></th><th>contacted</th><th>delivered</th><th>treatment responded</th>"
        "<th>control responded</th><th>uplift</th><th>incremental revenue</th><th>cost</th><th>ROI</th></tr>"
    )
    return f"<h2>By offer (分优惠)</h2>\n<table>{head}\n" + "\n".join(rows) + "</table>"


def render(campaign: Campaign, report: Report) -> str:
    t, c = report.treatment, report.control
    charts: list[tuple[str, str]] = []
    if report.response is not None:
        charts.append(("Response rate (响应率)", _rates("Response rate", report.response, "share responding")))
    if report.retention is not None:
        charts.append(("Churn rate (流失率)", _rates("Churn rate", report.retention, "share churned")))
    figures = "\n".join(
        f'<figure><img src="data:image/png;base64,{png}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, png in charts
    )
    roi = "—" if report.roi is None else f"{report.roi:.2%}"
    rows: list[tuple[str, Any, Any]] = [
        ("customers", t.customers, c.customers),
        ("contacted", t.contacted, c.contacted),
        ("delivered", t.delivered, c.delivered),
        ("responded", t.responded, c.responded),
        ("churned", t.churned, c.churned),
    ]
    table = "\n".join(f"<tr><th>{label}</th><td>{a:,}</td><td>{b:,}</td></tr>" for label, a, b in rows)
    title = f"{campaign.name} — 活动效果评估"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}td,th{{padding:.2em .8em;text-align:left}}
figure{{margin:1em 0}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(campaign.id)} · {html.escape(campaign.objective)} · {html.escape(campaign.status)} ·
{campaign.starts_at:%Y-%m-%d} – {campaign.ends_at:%Y-%m-%d} · control share {campaign.holdout_share}</p>
<table><tr><th></th><th>treatment 实验组</th><th>control 对照组</th></tr>
{table}</table>
<table>
{_uplift_rows("Response (响应)", report.response)}
{_uplift_rows("Churn (流失)", report.retention)}
<tr><th>Incremental revenue (增量收入)</th><td colspan=2>{_fen(report.incremental_revenue_fen)}</td></tr>
<tr><th>Cost of offers taken (成本)</th><td colspan=2>{_fen(report.cost_fen)}</td></tr>
<tr><th>ROI</th><td colspan=2>{roi}</td></tr>
</table>
{_offer_rows(report)}
{figures}
</body></html>
"""
