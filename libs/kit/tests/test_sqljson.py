"""Several tables' rows in one statement, on SQLite and PostgreSQL: what comes back is what was stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, Numeric, String, bindparam, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_kit.db import Database, UtcDateTime
from crm_kit.sqljson import document, from_rows, loads, rows_json

CST = timezone(timedelta(hours=8))


class Base(DeclarativeBase):
    pass


class Party(Base):
    __tablename__ = "party"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Line(Base):
    __tablename__ = "line"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    active: Mapped[bool] = mapped_column(Boolean)
    fee_fen: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    contract_end: Mapped[date | None] = mapped_column(Date)
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


@pytest_asyncio.fixture
async def db(database_url: Callable[[str], Awaitable[str]]) -> AsyncIterator[Database]:
    database = Database(await database_url("sqljson"))
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with database.sessions.begin() as session:
        session.add_all([Party(id="P1", name="王伟"), Party(id="P2", name="李娜")])
        await session.flush()
        session.add_all(
            [
                Line(
                    id="L1",
                    party_id="P1",
                    active=True,
                    fee_fen=12900,
                    score=Decimal("0.2309"),
                    activated_at=datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=CST),
                    contract_end=date(2027, 2, 28),
                    reasons=[{"feature": "arpu_trend", "weight": "0.31"}],
                ),
                Line(id="L2", party_id="P1", active=False, fee_fen=None, score=Decimal("1.0000")),
            ]
        )
    try:
        yield database
    finally:
        await database.dispose()


PARTY = bindparam("party", type_=String)
QUERY = document(
    party=rows_json(select(Party).where(Party.id == PARTY)),
    lines=rows_json(select(Line).where(Line.party_id == PARTY)),
    line_count=select(func.count()).where(Line.party_id == PARTY).scalar_subquery(),
)


async def read(db: Database, party: str) -> dict[str, Any]:
    """Through `Database.read_one`: on SQLite its own sqlite3 connection sees what the service's engine wrote."""
    return loads(await db.read_one(QUERY, {"party": party}))


async def test_every_part_comes_back_with_the_types_it_was_stored_with(db: Database):
    found = await read(db, "P1")
    assert found["line_count"] == 2
    (party,) = from_rows(Party, found["party"])
    assert (party.id, party.name) == ("P1", "王伟")
    lines = {line.id: line for line in from_rows(Line, found["lines"])}
    first, second = lines["L1"], lines["L2"]
    assert first.active is True and second.active is False
    assert first.fee_fen == 12900 and second.fee_fen is None
    assert first.score == Decimal("0.2309") and str(first.score) == "0.2309"
    assert second.score == Decimal(1)
    assert first.activated_at == datetime(2026, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)
    assert first.activated_at.tzinfo is not None and first.activated_at.utcoffset() == timedelta(0)
    assert first.contract_end == date(2027, 2, 28) and second.contract_end is None
    assert first.reasons == [{"feature": "arpu_trend", "weight": "0.31"}] and second.reasons is None


async def test_a_part_with_no_rows_is_an_empty_list(db: Database):
    found = await read(db, "P2")
    assert found["lines"] == [] and found["line_count"] == 0
    assert [p.name for p in from_rows(Party, found["party"])] == ["李娜"]
    nobody = await read(db, "P9")
    assert nobody["party"] == [] and from_rows(Party, nobody["party"]) == []


def test_a_key_must_be_an_identifier():
    with pytest.raises(ValueError, match="identifier"):
        document(**{"x'); DROP TABLE party; --": select(func.count()).scalar_subquery()})


WINDOW = document(
    lines=rows_json(
        select(Line)
        .where(
            Line.activated_at >= bindparam("since", type_=UtcDateTime),
            Line.contract_end <= bindparam("until", type_=Date),
        )
        .limit(5)
    )
)


async def test_read_one_binds_each_parameter_through_its_type_as_the_engine_would(db: Database):
    """A zoned time reaches the database in UTC, a date as the dialect stores it, a constant limit as compiled."""
    since_in_shanghai = datetime(2026, 3, 1, 9, 30, tzinfo=CST)  # 01:30 UTC: L1 was activated 15 s later
    found = loads(await db.read_one(WINDOW, {"since": since_in_shanghai, "until": date(2027, 2, 28)}))
    assert [line.id for line in from_rows(Line, found["lines"])] == ["L1"]
    later = loads(
        await db.read_one(WINDOW, {"since": since_in_shanghai + timedelta(minutes=1), "until": date(2027, 2, 28)})
    )
    assert later["lines"] == []
    earlier_end = loads(await db.read_one(WINDOW, {"since": since_in_shanghai, "until": date(2027, 2, 27)}))
    assert earlier_end["lines"] == []
