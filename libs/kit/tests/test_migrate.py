"""`crm migrate`: what the migration Job of every service runs before a rollout, against a real database file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from crm_kit.migrate import migrations_dir


def crm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `crm` command as a Job runs it: a process of its own, judged by its exit code and its stderr."""
    return subprocess.run(
        [sys.executable, "-m", "crm_kit.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {})},
        check=False,
    )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def revision(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (rev,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return rev


def test_migrate_brings_a_service_database_to_head_and_is_safe_to_repeat(tmp_path: Path) -> None:
    database = tmp_path / "ticketing.db"
    url = f"sqlite+aiosqlite:///{database}"

    first = crm("migrate", "crm_ticketing", "--database-url", url)
    assert first.returncode == 0, first.stderr
    assert {"ticket", "sla_clock", "queue", "hub_delivery", "knowledge_article", "outbox", "inbox"} <= tables(database)
    head = ScriptDirectory(str(migrations_dir("crm_ticketing"))).get_current_head()
    assert revision(database) == head

    again = crm("migrate", "crm_ticketing", env={"CRM_MIGRATE_DATABASE_URL": url})  # a Job retried after success
    assert again.returncode == 0, again.stderr
    assert revision(database) == head


def test_an_unknown_package_is_refused_by_name(tmp_path: Path) -> None:
    database = tmp_path / "nothing.db"
    result = crm("migrate", "crm_nowhere", "--database-url", f"sqlite+aiosqlite:///{database}")
    assert result.returncode != 0
    assert "crm_nowhere" in result.stderr
    assert "not installed" in result.stderr
    assert not database.exists()


def test_a_package_without_migrations_is_refused_by_name(tmp_path: Path) -> None:
    result = crm("migrate", "crm_kit", "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'kit.db'}")
    assert result.returncode != 0
    assert "'crm_kit' has no migrations" in result.stderr
