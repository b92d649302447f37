"""The database layer on SQLite and PostgreSQL: aware UTC times, the caller's transaction, idempotent inserts."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import StatementError

from crm_kit.db import (
    Database,
    UtcDateTime,
    insert_ignoring_duplicates,
    insert_many,
    is_sqlite,
    kit_metadata,
)

CST = timezone(timedelta(hours=8))

metadata = MetaData()
moments = Table(
    "moments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=True),
)
ledger = Table("ledger", metadata, Column("key", String(32), primary_key=True), Column("value", String(32)))


@pytest_asyncio.fixture
async def db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    database = Database(await database_url("kitdb"))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(kit_metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def test_an_aware_time_comes_back_as_the_same_instant_in_utc(db: Database):
    stored = datetime(2026, 11, 20, 9, 30, 0, 250000, tzinfo=CST)
    async with db.sessions.begin() as session:
        await session.execute(insert(moments).values(id=1, at=stored))
    async with db.sessions() as session:
        loaded = await session.scalar(select(moments.c.at).where(moments.c.id == 1))
    assert loaded == stored
    assert loaded.tzinfo is not None and loaded.utcoffset() == timedelta(0)
    assert loaded == datetime(2026, 11, 20, 1, 30, 0, 250000, tzinfo=UTC)


async def test_times_order_by_instant_whatever_zone_they_were_written_in(db: Database):
    async with db.sessions.begin() as session:
        await session.execute(
            insert(moments),
            [
                {"id": 1, "at": datetime(2026, 11, 20, 9, 0, tzinfo=CST)},  # 01:00 UTC
                {"id": 2, "at": datetime(2026, 11, 20, 0, 30, tzinfo=UTC)},  # 00:30 UTC
            ],
        )
    async with db.sessions() as session:
        assert list(await session.scalars(select(moments.c.id).order_by(moments.c.at))) == [2, 1]


async def test_a_naive_time_is_refused(db: Database):
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.sessions.begin() as session:
            await session.execute(insert(moments).values(id=1, at=datetime(2026, 11, 20, 9, 30)))
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(moments)) == 0


async def test_null_stays_null(db: Database):
    async with db.sessions.begin() as session:
        await session.execute(insert(moments).values(id=1, at=None))
    async with db.sessions() as session:
        assert await session.scalar(select(moments.c.at)) is None


async def test_the_transaction_commits_once_or_not_at_all(db: Database):
    # `transaction()` is a generator dependency: the framework throws the route's error into it.
    transaction = contextlib.asynccontextmanager(db.transaction)
    async with transaction() as session:
        await session.execute(insert(ledger).values(key="a", value="1"))
        await session.flush()
        await session.execute(insert(ledger).values(key="c", value="3"))
    with pytest.raises(RuntimeError):
        async with transaction() as session:
            await session.execute(insert(ledger).values(key="b", value="2"))
            await session.flush()
            raise RuntimeError("the route failed")
    async with db.sessions() as session:
        assert list(await session.scalars(select(ledger.c.key).order_by(ledger.c.key))) == ["a", "c"]


async def test_insert_ignoring_duplicates_keeps_the_first_row(db: Database):
    async with db.sessions.begin() as session:
        statement = insert_ignoring_duplicates(db.dialect, ledger)
        first = await session.execute(statement, [{"key": "k", "value": "first"}])
        second = await session.execute(statement, [{"key": "k", "value": "second"}])
    assert first.rowcount == 1
    assert second.rowcount == 0
    async with db.sessions() as session:
        assert list(await session.execute(select(ledger.c.key, ledger.c.value))) == [("k", "first")]


stamped = Table(
    "stamped",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", String(32)),
    Column("size", Integer),
    Column("at", UtcDateTime),
)


async def test_insert_many_writes_every_row_with_the_shared_values_through_their_type(db: Database):
    at = datetime(2026, 11, 24, 9, 30, 0, 123456, tzinfo=CST)
    rows = [(f"k{n:05d}", None if n % 7 == 0 else f"v{n}", n) for n in range(9_000)]
    async with db.sessions.begin() as session:
        assert await insert_many(session, stamped, ("key", "value", "size"), rows, same={"at": at}) == []
    async with db.sessions() as session:
        found = (await session.execute(select(stamped).order_by(stamped.c.key))).all()
    assert [(r.key, r.value, r.size) for r in found] == rows
    assert {r.at for r in found} == {at.astimezone(UTC)}


async def test_insert_many_ignoring_duplicates_returns_only_the_rows_that_went_in(db: Database):
    """More rows than one SQLite statement takes: each of them is returned once, a taken key never."""
    async with db.sessions.begin() as session:
        await insert_many(session, stamped, ("key", "value", "size"), [("k00003", "earlier", 0)])
    rows = [(f"k{n:05d}", f"v{n}", n) for n in range(10_000)]
    async with db.sessions.begin() as session:
        went_in = await insert_many(
            session, stamped, ("key", "value", "size"), rows, ignore_duplicates=True, returning="key"
        )
        again = await insert_many(
            session, stamped, ("key", "value", "size"), rows[:10], ignore_duplicates=True, returning="key"
        )
    assert sorted(went_in) == [key for key, _, _ in rows if key != "k00003"]
    assert again == []
    async with db.sessions() as session:
        assert await session.scalar(select(stamped.c.value).where(stamped.c.key == "k00003")) == "earlier"
        assert await session.scalar(select(func.count()).select_from(stamped)) == 10_000


async def test_ping_reaches_the_database(db: Database):
    await db.ping()
    assert db.dialect == ("sqlite" if is_sqlite(db.url) else "postgresql")


async def test_a_read_on_a_connection_the_server_dropped_fails_once_and_the_next_gets_a_new_one(
    database_url: Callable[[str], Awaitable[str]],
):
    """read_one runs on the driver's connection, past SQLAlchemy's own handling of a lost connection: it must
    not hand the dead connection back to the pool, or every later read on it would fail too."""
    url = await database_url("kitdrop")
    if is_sqlite(url):
        pytest.skip("a SQLite file has no server to drop a connection")
    db = Database(url, pool_size=1)
    backend_pid = select(func.pg_backend_pid())
    try:
        first = await db.read_one(backend_pid, {})
        assert await db.read_one(backend_pid, {}) == first, "the one pooled connection is reused"
        other = Database(url, pool_size=1)
        try:
            async with other.engine.connect() as conn:
                await conn.scalar(select(func.pg_terminate_backend(first)))
        finally:
            await other.dispose()
        with pytest.raises(Exception):  # noqa: B017 - closed, or a protocol error: the driver decides which
            await db.read_one(backend_pid, {})
        second = await db.read_one(backend_pid, {})
        assert second != first
        assert await db.read_one(backend_pid, {}) == second
    finally:
        await db.dispose()


async def test_a_waiting_writer_gets_in_at_the_next_commit_not_after_a_busy_writer_is_done(db: Database):
    """SQLite's own wait is sleep-and-poll with no queue: a writer whose transactions follow each other back to
    back (a consumer applying a backlog) would keep a second writer (the outbox relay, a request) out for as
    long as it runs. The service's writers queue instead."""
    if not is_sqlite(db.url):
        pytest.skip("PostgreSQL queues writers on row locks itself")
    busy_commits = 0
    stop = asyncio.Event()

    async def busy_writer() -> None:
        nonlocal busy_commits
        n = 0
        while not stop.is_set():
            async with db.sessions.begin() as session:
                await session.execute(insert(ledger).values(key=f"busy-{n}", value="x"))
                await asyncio.sleep(0.02)  # the transaction stays open, as a batch of handlers keeps it
            n += 1
            busy_commits += 1

    busy = asyncio.create_task(busy_writer())
    try:
        await asyncio.sleep(0.1)
        commits_before = busy_commits
        async with db.sessions.begin() as session:
            await session.execute(insert(ledger).values(key="waiting", value="y"))
        waited_for = busy_commits - commits_before
        assert not busy.done()
        assert waited_for <= 2, f"the second writer waited for {waited_for} of the busy writer's transactions"
    finally:
        stop.set()
        await busy


MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    for name in ("gadgets", "widgets", "sprockets"):
        op.create_table(name, sa.Column("id", sa.Integer, primary_key=True), sa.Column("label", sa.String(32)))
        op.create_index(f"ix_{name}_label", name, ["label"])


def downgrade():
    pass
"""


async def test_workers_starting_together_migrate_one_at_a_time(
    database_url: Callable[[str], Awaitable[str]], tmp_path: Path
):
    """uvicorn workers (or replicas) each migrate at startup: on a fresh database the later ones must wait for
    the first and find it at head, not create the same tables again and fail to start."""
    migrations = tmp_path / "migrations"
    (migrations / "versions").mkdir(parents=True)
    (migrations / "env.py").write_text("from crm_kit.db import run_migrations\n\nrun_migrations([])\n")
    (migrations / "versions" / "0001_parts.py").write_text(MIGRATION)
    for attempt in range(3):
        url = await database_url(f"migrated{attempt}")
        start_at = time.time() + 3  # every worker imported and waiting: they start as one
        code = (
            "import time; from crm_kit.db import upgrade; "
            f"time.sleep(max(0, {start_at} - time.time())); upgrade({url!r}, {str(migrations)!r})"
        )
        workers = [
            await asyncio.create_subprocess_exec(sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE)
            for _ in range(4)
        ]
        failures = [(await w.communicate())[1].decode()[-600:] for w in workers]
        assert [(w.returncode, f) for w, f in zip(workers, failures, strict=True) if w.returncode] == []
        db = Database(url)
        try:
            async with db.sessions() as session:
                assert await session.scalar(text("SELECT version_num FROM alembic_version")) == "0001"
        finally:
            await db.dispose()


async def test_insert_many_refuses_raw_times_that_sqlite_would_keep_with_their_offset(db: Database):
    """On SQLite a +08:00 time written as the driver's text would compare wrong against UTC ones; rows must carry
    times as their column's driver value (or share one in `same`)."""
    at = datetime(2026, 10, 2, 22, 30, tzinfo=CST)
    async with db.sessions.begin() as session:
        if db.dialect == "sqlite":
            with pytest.raises(TypeError, match="at is a datetime"):
                await insert_many(session, stamped, ("key", "at"), [("k1", at)])
        else:  # asyncpg binds the instant itself
            await insert_many(session, stamped, ("key", "at"), [("k1", at)])
            assert await session.scalar(select(stamped.c.at)) == at
