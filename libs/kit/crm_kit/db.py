"""Async engine and sessions for SQLite (default) and PostgreSQL, the kit's own tables, Alembic wiring."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetime stored as UTC; SQLite forgets the zone, this puts it back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; the CRM stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer, "sqlite")

kit_metadata = MetaData(naming_convention=NAMING)

outbox_table = Table(
    "outbox",
    kit_metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    # Unique by construction (uuid4, or the uuid5 of a record claimed once) and never looked up: no index.
    Column("id", String(64), nullable=False),
    Column("aggregatetype", String(128), nullable=False, doc="the topic"),
    Column("aggregateid", String(128), nullable=False, doc="the message key: the customer id"),
    Column("type", String(128), nullable=False),
    Column("payload", Text, nullable=False, doc="the CloudEvent, structured JSON"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_outbox_pending", "seq", postgresql_where=text("sent_at IS NULL"), sqlite_where=text("sent_at IS NULL")),
)

inbox_table = Table(
    "inbox",
    kit_metadata,
    Column("consumer", String(64), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("type", String(128), nullable=False),
    Column("processed_at", UtcDateTime, nullable=False),
)


SQLITE_BUSY_SECONDS = 30.0
"""How long a SQLite writer waits for the database before it gives up with "database is locked"."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    cur.close()


DML = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _WriteQueue:
    """The queue of a database file's writers: this process's threads wait on a lock, and the process then waits
    on an exclusive flock of a file beside the database (`<file>-writers`), which the other processes on the
    file (a `crm relay`, a second worker) take the same way; the kernel wakes the next the moment it is free."""

    def __init__(self, database: Path) -> None:
        self.threads = threading.Lock()
        self.path = database.with_name(database.name + "-writers")
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        if not self.threads.acquire(timeout=timeout):
            return False
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self.threads.release()
            raise
        return True

    def release(self) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self.threads.release()


_WRITE_QUEUES: dict[str, _WriteQueue] = {}


class _QueuedWriteCursor(sqlite3.Cursor):
    connection: _QueuedWriteConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _QueuedWriteCursor:
        self.connection.before_statement(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after_statement()

    def executemany(self, sql: str, parameters: Any, /) -> _QueuedWriteCursor:
        self.connection.before_statement(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.after_statement()


class _QueuedWriteConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue (`_WriteQueue`) per database file.

    SQLite has one writer at a time, and a writer that finds the database locked sleeps and polls (1 ms, then
    up to 100 ms between tries) with no queue: under steady writes from the consumers, a request's or the
    outbox relay's write could starve for the whole busy timeout. Here the service's own writers wait in a
    queue instead and the next one starts the moment the last commits. The transaction starts where the sqlite3
    module starts it, at the first INSERT/UPDATE/DELETE/REPLACE, so reads never wait.
    """

    write_lock: _WriteQueue
    lock_timeout: float
    holds_write_lock = False

    def cursor(self, factory: Any = _QueuedWriteCursor) -> Any:
        return super().cursor(factory)

    def before_statement(self, sql: str) -> None:
        if self.holds_write_lock or self.in_transaction or not sql.lstrip()[:7].upper().startswith(DML):
            return
        if not self.write_lock.acquire(timeout=self.lock_timeout):
            raise sqlite3.OperationalError("database is locked (waited for this service's other writers)")
        self.holds_write_lock = True

    def after_statement(self) -> None:
        """The lock goes with the transaction: at once when the statement started none (autocommit)."""
        if self.holds_write_lock and not self.in_transaction:
            self.holds_write_lock = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.after_statement()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after_statement()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.holds_write_lock:
                self.holds_write_lock = False
                self.write_lock.release()


def _queued_writes(database: str, timeout: float) -> type[_QueuedWriteConnection]:
    """The connection class for one database file: every engine on that file in this process shares its queue."""
    path = Path(database).resolve()
    lock = _WRITE_QUEUES.setdefault(str(path), _WriteQueue(path))
    return type("QueuedWriteConnection", (_QueuedWriteConnection,), {"write_lock": lock, "lock_timeout": timeout})


def make_engine(url: str, *, query_timeout_seconds: float = 10.0, pool_size: int = 32) -> AsyncEngine:
    """An engine with the pragmas/timeouts this system relies on, keeping `pool_size` connections open."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # No rollback when a connection goes back to the pool: SQLAlchemy has already ended the connection's
        # transaction (committed, or rolled back on close), and on aiosqlite the extra rollback is one more hop to
        # the connection's thread on every request.
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_SECONDS}
        if database and database != ":memory:":
            connect_args["factory"] = _queued_writes(database, SQLITE_BUSY_SECONDS)
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_reset_on_return=None, connect_args=connect_args
        )

        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    timeout_ms = int(query_timeout_seconds * 1000)
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,  # the server's connections are shared by every replica: past the pool, wait
        # No ping before every checkout (a round trip per request); a connection the server dropped fails one
        # statement, which invalidates the pool so the rest reconnect, and none lives past half an hour.
        pool_recycle=1800,
        pool_timeout=query_timeout_seconds,
        connect_args={
            "server_settings": {"statement_timeout": str(timeout_ms)},
            "timeout": query_timeout_seconds,
            # asyncpg re-prepares (parses and plans) every statement over 15 KiB on every call; `read_one`'s
            # page statements are bigger than that, and planning one costs more than running it.
            "max_cacheable_statement_size": 256 * 1024,
        },
    )


class Database:
    """One engine and its session factory. The caller of `transaction()` owns the commit."""

    def __init__(self, url: str, *, query_timeout_seconds: float = 10.0, pool_size: int = 32) -> None:
        self.url = url
        self.engine = make_engine(url, query_timeout_seconds=query_timeout_seconds, pool_size=pool_size)
        # A Session class of its own, so event listeners (the outbox nudge) stay with this database.
        self.session_class: type[Session] = type("CrmSession", (Session,), {})
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=self.session_class)
        self._sqlite_reader: Engine | None = None
        if is_sqlite(url) and make_url(url).database not in (None, "", ":memory:"):
            self._sqlite_reader = create_engine(
                make_url(url).set(drivername="sqlite"), pool_size=pool_size, max_overflow=pool_size
            )
            event.listen(self._sqlite_reader, "connect", _sqlite_pragmas)
        self._compiled_reads: dict[Executable, _CompiledRead] = {}

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Yields a session inside a transaction; commits once at the end, rolls back on error."""
        async with self.sessions.begin() as session:
            yield session

    async def read_one(self, statement: Executable, parameters: Mapping[str, Any]) -> Any:
        """The first column of the first row of a read that is one statement, on a connection of its own (one
        statement is its own consistent snapshot).

        A hot page read by one statement pays mostly for the layers around the driver, so the statement is
        compiled once and then run on the driver's own connection: no per-call cache key over a statement of
        dozens of parts, no execution context, no BEGIN/COMMIT on PostgreSQL. On SQLite it runs on the event
        loop's own thread, on a plain sqlite3 connection: an indexed read from the page cache takes tens of µs
        (the 360 view's, 60 µs), and handing it to a worker thread cost more than that in wake-ups alone (the
        360 view's server CPU per request went from ~870 µs to ~650 µs without the hop)."""
        if self.dialect == "sqlite" and self._sqlite_reader is None:  # in memory: only the engine's connection
            async with self.engine.connect() as conn:
                return await conn.scalar(statement, parameters)
        sql, arguments = self._compiled(statement).arguments(parameters)
        if self._sqlite_reader is not None:
            return self._sqlite_read_one(sql, arguments)
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            try:
                return await driver.fetchval(sql, *arguments)  # type: ignore[union-attr]
            except Exception as exc:
                # Not back into the pool unless the server answered with an SQL error: a dropped connection may
                # surface as closed, or first as a protocol error on a connection that does not know it yet.
                if driver.is_closed() or not isinstance(exc, asyncpg.PostgresError):  # type: ignore[union-attr]
                    await conn.invalidate()
                raise

    def _compiled(self, statement: Executable) -> _CompiledRead:
        compiled = self._compiled_reads.get(statement)
        if compiled is None:
            compiled = self._compiled_reads[statement] = _CompiledRead(statement, self.engine.dialect)
        return compiled

    def _sqlite_read_one(self, sql: str, arguments: list[Any]) -> Any:
        assert self._sqlite_reader is not None
        with self._sqlite_reader.connect() as conn:
            row = conn.connection.driver_connection.execute(sql, arguments).fetchone()  # type: ignore[union-attr]
            return None if row is None else row[0]

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._sqlite_reader is not None:
            self._sqlite_reader.dispose()


class _CompiledRead:
    """A statement compiled once for the database's dialect: its SQL, and how a call's parameters become the
    driver's positional arguments (the bound defaults filled in, each value through its type's processor, as
    SQLAlchemy itself would)."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not compiled.positional:
            raise ValueError(f"read_one needs a positional parameter style; {dialect.name} uses named")
        self.sql = compiled.string
        self._compiled = compiled
        self._names = list(compiled.positiontup or [])
        self._processors = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._names
        ]

    def arguments(self, parameters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        values = self._compiled.construct_params(dict(parameters))
        arguments = []
        for name, process in zip(self._names, self._processors, strict=True):
            value = values[name]
            arguments.append(value if process is None or value is None else process(value))
        return self.sql, arguments


def _alembic_config(url: str, migrations_dir: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, migrations_dir: Path, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocking: call from a thread when a loop is running."""
    command.upgrade(_alembic_config(url, migrations_dir), revision)


async def upgrade_async(url: str, migrations_dir: Path) -> None:
    await asyncio.to_thread(upgrade, url, migrations_dir)


MIGRATION_LOCK = 0x63726D6D6967
"""The PostgreSQL advisory lock a service's migrations run under ("crmmig")."""


@contextlib.contextmanager
def _one_migrator_at_a_time(connection: Connection) -> Iterator[None]:
    """Replicas (or uvicorn workers) starting together all migrate at startup; one at a time, each after the
    last has committed, so the later ones find the database at head instead of creating the same tables again:
    an advisory lock on PostgreSQL, an exclusive flock of `<file>-migrations` beside a SQLite file."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
        return
    database = connection.engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}-migrations", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_migrations(target_metadata: list[MetaData]) -> None:
    """The body of every service's `migrations/env.py`: online, async, against `sqlalchemy.url`."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with _one_migrator_at_a_time(connection):
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()  # inside the lock: the next migrator must find this one's work done

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def run_async() -> None:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(run_async())


def insert_ignoring_duplicates(dialect: str, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for PostgreSQL and SQLite: safe against a concurrent writer."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


SQLITE_ROWS_PER_STATEMENT_PARAMETERS = 30_000
"""Bound values per multi-row INSERT on SQLite (its limit is 32,766)."""


def _refuse_raw_times(columns: tuple[str, ...], row: tuple[Any, ...]) -> None:
    """SQLite keeps a datetime the driver is handed as its text, offset and all, and compares times as text: a
    +08:00 time among UTC ones sorts wrong. Rows skip the column types that normalise them, so a time must come
    as its column's driver value, or in `same`. The first row shows the shape of them all."""
    for name, value in zip(columns, row, strict=True):
        if isinstance(value, datetime):
            raise TypeError(
                f"insert_many: {name} is a datetime; pass it through its column type or in `same` (UtcDateTime)"
            )


async def insert_many(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    same: Mapping[str, Any] | None = None,
    ignore_duplicates: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (tuples of `columns`) in the session's transaction, straight on the driver; with `returning`,
    that column of every row that went in.

    For a feed's thousands of rows a second, where SQLAlchemy's per-row parameter handling costs more than the
    database's write: row values must be what the driver takes as they are (str, int, None), and `same` holds
    the columns with one value for every row (a batch's timestamp), put through their column's type once.
    `ignore_duplicates` skips rows whose key is taken (ON CONFLICT DO NOTHING), safe against concurrent writers.
    PostgreSQL gets one INSERT … SELECT FROM unnest(one array per column); SQLite an executemany, or multi-row
    VALUES statements when rows are returned.
    """
    if not rows:
        return []
    conn = await session.connection()
    dialect = conn.dialect
    if dialect.name == "sqlite":
        _refuse_raw_times(columns, rows[0])
    quote = dialect.identifier_preparer.quote
    constants = {}
    for name, value in (same or {}).items():
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        constants[name] = value if process is None or value is None else process(value)
    names = ", ".join(quote(name) for name in (*columns, *constants))
    tail = (" ON CONFLICT DO NOTHING" if ignore_duplicates else "") + (
        f" RETURNING {quote(returning)}" if returning else ""
    )
    into = f"INSERT INTO {quote(table.name)} ({names})"
    if dialect.name == "postgresql":
        arrays = [f"${n}::{table.c[name].type.compile(dialect)}[]" for n, name in enumerate(columns, start=1)]
        scalars = [
            f"${n}::{table.c[name].type.compile(dialect)}" for n, name in enumerate(constants, start=len(columns) + 1)
        ]
        # identifiers from the table's own metadata, quoted; every value is bound
        sql = f"{into} SELECT {', '.join(['*', *scalars])} FROM unnest({', '.join(arrays)}){tail}"  # noqa: S608
        result = await conn.exec_driver_sql(sql, (*(list(c) for c in zip(*rows, strict=True)), *constants.values()))
        return list(result.scalars().all()) if returning else []
    extra = tuple(constants.values())
    one = "(" + ", ".join("?" * (len(columns) + len(extra))) + ")"
    if not returning:
        await conn.exec_driver_sql(f"{into} VALUES {one}{tail}", [row + extra for row in rows])
        return []
    found: list[Any] = []
    per_statement = max(1, SQLITE_ROWS_PER_STATEMENT_PARAMETERS // (len(columns) + len(extra)))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = [value for row in chunk for value in (*row, *extra)]
        result = await conn.exec_driver_sql(f"{into} VALUES {', '.join([one] * len(chunk))}{tail}", tuple(values))
        found += result.scalars().all()
    return found
