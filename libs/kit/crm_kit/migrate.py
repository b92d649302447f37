"""`crm migrate <package>`: bring a service's database to head from outside the service (迁移).

In a cluster the services start with `AUTO_MIGRATE` off and a Job runs this once before a rollout, so replicas never
race a schema change and a failed migration stops the rollout instead of crash-looping every pod. The migrations ship
inside each service package (`crm_<name>/migrations/`); they are found by the package's name, without importing it
(the kit imports no service).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Annotated

import typer

from crm_kit.db import upgrade
from crm_kit.observability import configure_logging

log = logging.getLogger(__name__)


class MigrationsNotFound(LookupError):
    """The named package is not installed, or carries no Alembic migrations."""


def migrations_dir(package: str) -> Path:
    """The `migrations/` folder inside the installed package `package` (e.g. `crm_customer`)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:  # a dotted name whose parent is missing, or an empty name
        raise MigrationsNotFound(f"package {package!r} is not installed") from exc
    if spec is None or not spec.submodule_search_locations:
        raise MigrationsNotFound(f"package {package!r} is not installed")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "migrations"
        if (folder / "env.py").is_file():
            return folder
    raise MigrationsNotFound(f"package {package!r} has no migrations/ folder with an env.py")


def migrate(
    package: Annotated[str, typer.Argument(help="the service package whose migrations run, e.g. crm_customer")],
    database_url: Annotated[
        str, typer.Option(envvar="CRM_MIGRATE_DATABASE_URL", help="the service's database (SQLAlchemy URL)")
    ],
    revision: Annotated[str, typer.Option(help="the Alembic revision to reach")] = "head",
    log_level: Annotated[str, typer.Option(envvar="CRM_LOG_LEVEL")] = "INFO",
) -> None:
    """Apply a service's database migrations up to `revision` (head by default) and exit."""
    configure_logging("migrate", log_level, True)
    try:
        folder = migrations_dir(package)
    except MigrationsNotFound as exc:
        typer.echo(f"crm migrate: {exc}", err=True)
        raise typer.Exit(2) from exc
    log.info("migrating %s to %s", package, revision)
    upgrade(database_url, folder, revision)
    log.info("%s is at %s", package, revision)
