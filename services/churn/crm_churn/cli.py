"""`crm train`: train a churn or bad-debt model on the feature store or on a file, register it, promote it if it
beats the active one, and write its report. Registered with the kit's `crm` command as a plugin."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


class Layout(StrEnum):
    auto = "auto"
    ibm_telco = "ibm_telco"
    orange_wide = "orange_wide"


class ModelKind(StrEnum):
    churn = "churn"
    bad_debt = "bad_debt"


def train(
    kind: Annotated[ModelKind, typer.Option(help="churn (离网) or bad_debt (坏账)")] = ModelKind.churn,
    months: Annotated[int, typer.Option(min=1, max=36, help="Monthly snapshots to learn from, the latest usable")] = 12,
    file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Train on this file instead")] = None,
    layout: Annotated[Layout, typer.Option(help="The file's layout")] = Layout.auto,
    labels: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="Orange labels file")] = None,
    report: Annotated[Path, typer.Option(help="Where the model report is written")] = Path("var/reports"),
    database_url: Annotated[
        str | None, typer.Option(help="The churn database (default: CRM_CHURN_DATABASE_URL)")
    ] = None,
) -> None:
    """Train, register and decide; exit 1 when there is nothing to learn from."""
    outcome, directory = asyncio.run(_train(kind.value, months, file, layout.value, labels, report, database_url))
    trained = outcome.trained
    table = Table(title=f"{trained.predictor.version}: validation", show_header=False)
    for name in ("roc_auc", "pr_auc", "top_decile_lift", "brier", "base_rate", "rows", "positives"):
        table.add_row(
            name,
            f"{trained.metrics[name]:.4f}" if isinstance(trained.metrics[name], float) else str(trained.metrics[name]),
        )
    table.add_row("training rows", str(trained.training["rows"]))
    table.add_row("seconds", f"{trained.seconds:.1f}")
    console.print(table)
    verdict = "promoted (active)" if outcome.promoted else "rejected"
    reason = outcome.comparison.reason if outcome.comparison else "no model of this kind was active"
    console.print(f"{verdict}: {reason}")
    console.print(f"report: {directory / 'report.html'}")


async def _train(
    kind: str, months: int, file: Path | None, layout: str, labels: Path | None, report: Path, database_url: str | None
) -> tuple[object, Path]:
    from crm_churn.domain import loaders, retrain
    from crm_churn.domain import report as reports
    from crm_churn.domain.training_set import NotEnoughHistory
    from crm_churn.settings import Settings
    from crm_kit.db import Database, upgrade_async, utcnow

    settings = Settings(**({"database_url": database_url} if database_url else {}))
    await upgrade_async(settings.database_url, Path(__file__).parent / "migrations")
    db = Database(settings.database_url)
    try:
        if file is None:
            training_set = await retrain.training_set_from_store(db, settings, kind, months)
        else:
            chosen = loaders.detect_layout(file) if layout == "auto" else layout
            training_set = (
                loaders.load_ibm_telco(file)
                if chosen == "ibm_telco"
                else loaders.load_orange_wide(file, labels, kind=kind)
            )
        outcome = await retrain.learn(db, training_set, utcnow())
    except (NotEnoughHistory, loaders.DatasetError, ValueError) as exc:
        console.print(f"[red]cannot train:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        await db.dispose()
    directory = report / outcome.trained.predictor.version
    reports.write_report(outcome.trained, directory)
    return outcome, directory
