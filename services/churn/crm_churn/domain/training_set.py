"""Training sets from the feature store: monthly snapshots of every customer with a line open, the features as of
each snapshot (`domain.features`) and the label the following horizon gave.

- churn (离网): the customer has no line open at snapshot + horizon (all terminated or ported out);
- bad debt (坏账): within the horizon a bill becomes 90 days overdue, the account is handed to a collection agency
  or written off, or a line is closed for arrears (欠费拆机); customers already there at the snapshot are left out.

A snapshot is used only when its horizon has fully passed by the store's watermark (the latest thing it knows),
and only once the store holds 120 days of history before it, so no window is cut short."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crm_churn.domain.dataset import TrainingSet
from crm_churn.domain.features import (
    DAY,
    FEATURE_NAMES,
    History,
    Table,
    as_floats,
    as_objects,
    compute,
    snapshot_seconds,
)
from crm_churn.domain.store import COLLECTION_STAGES, FactKind
from crm_churn.models import Fact, Line, Profile, UsageDay
from crm_kit.db import Database, UtcDateTime
from crm_kit.presentation import SHANGHAI
from crm_kit.sqljson import document, loads, rows_json

HISTORY_DAYS = 120
"""The longest window a feature looks back over (usage against the three months before the last)."""
BAD_DEBT_STAGE = COLLECTION_STAGES.index("with_agency")
BAD_DEBT_DAYS_OVERDUE = 90


class NotEnoughHistory(Exception):
    """The store does not yet hold a snapshot whose horizon has passed."""


def monthly_snapshots(first: date, last: date, hour: int) -> list[datetime]:
    """The 1st of every month from `first` to `last` (inclusive, by month), at `hour` in Shanghai."""
    out = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        out.append(datetime(year, month, 1, hour, tzinfo=SHANGHAI))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


async def store_span(session: AsyncSession) -> tuple[datetime, datetime] | None:
    """From the first day of behaviour the store holds (usage; facts when there is no usage — activations and bills
    reach back years and say nothing of the months before the feed began) to the latest moment it knows of."""
    facts = select(func.min(Fact.occurred_at), func.max(Fact.occurred_at))
    first_fact, last_fact = (await session.execute(facts)).one()
    first_day, last_day = (await session.execute(select(func.min(UsageDay.day), func.max(UsageDay.day)))).one()
    first = _day_start(first_day) if first_day is not None else first_fact
    ends = [m for m in (last_fact, _day_start(last_day + timedelta(days=1)) if last_day else None) if m is not None]
    if first is None or not ends:
        return None
    return first, max(ends)


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def usable_snapshots(span: tuple[datetime, datetime], horizon_days: int, hour: int, months: int) -> list[datetime]:
    """The latest `months` monthly snapshots with 90 days of history before them and their horizon passed."""
    first, last = span
    earliest = first + timedelta(days=HISTORY_DAYS)
    latest = last - timedelta(days=horizon_days)
    candidates = [
        s
        for s in monthly_snapshots(earliest.astimezone(SHANGHAI).date(), latest.astimezone(SHANGHAI).date(), hour)
        if earliest <= s <= latest
    ]
    if not candidates:
        raise NotEnoughHistory(
            f"the store spans {first:%Y-%m-%d} to {last:%Y-%m-%d}: a training snapshot needs {HISTORY_DAYS} days "
            f"before it and its {horizon_days}-day horizon after it"
        )
    return candidates[-months:]


def _epoch_days(column: Any, dialect: str) -> Any:
    """A date as days since 1970-01-01, worked out by the database: parsing a million dates in Python takes
    seconds."""
    if dialect == "postgresql":
        return type_coerce(column - literal_column("DATE '1970-01-01'"), Integer)
    return cast(func.julianday(column) - 2440587.5, Integer)


def _epoch_seconds(column: Any, dialect: str) -> Any:
    """A UTC timestamp as seconds since 1970, worked out by the database."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return cast(func.strftime("%s", column), Float)


@dataclass(frozen=True)
class _Reads:
    """The three statements a history is read with: profiles with their lines (one statement: a line's customer
    always has a profile, the activation makes it), usage, facts."""

    people: Select[Any]
    usage: Select[Any]
    facts: Select[Any]

    def limited(self, who: Callable[[Any], ColumnElement[bool]]) -> _Reads:
        """Only the customers `who` selects, given a table's customer_id column."""
        return _Reads(
            self.people.where(who(Profile.customer_id)),
            self.usage.where(who(UsageDay.customer_id)),
            self.facts.where(who(Fact.customer_id)),
        )


def _reads(dialect: str, until: Any, until_day: Any, since_day: Any | None) -> _Reads:
    """Everyone not erased, as of `until` (usage of the days before `until_day`, from `since_day` if given);
    values or bound parameters alike."""
    days, seconds = partial(_epoch_days, dialect=dialect), partial(_epoch_seconds, dialect=dialect)
    people = (
        select(
            Profile.customer_id,
            Profile.customer_type,
            Profile.region,
            Line.subscription_id,
            seconds(Line.activated_at).label("activated_at"),
            seconds(Line.closed_at).label("closed_at"),
            Line.payment_mode,
            days(Line.contract_end).label("contract_end"),
        )
        .select_from(Profile)
        .outerjoin(Line, and_(Line.customer_id == Profile.customer_id, Line.activated_at < until))
        .where(Profile.erased_at.is_(None))
    )
    usage = select(
        UsageDay.customer_id,
        days(UsageDay.day).label("day"),
        UsageDay.voice_minutes,
        UsageDay.sms_count,
        UsageDay.data_mb,
        UsageDay.roaming_lines,
        UsageDay.charged_fen,
    ).where(UsageDay.day < until_day)
    if since_day is not None:
        usage = usage.where(UsageDay.day >= since_day)
    facts = select(
        Fact.customer_id,
        seconds(Fact.occurred_at).label("occurred_at"),
        Fact.kind,
        Fact.amount_fen,
        Fact.quantity,
        Fact.detail,
        Fact.ref,
    ).where(Fact.occurred_at < until)
    return _Reads(people, usage, facts)


def _history(people: Table, usage: Table, facts: Table) -> History:
    first = ~pd.Series(people["customer_id"]).duplicated().to_numpy()
    has_line = pd.notna(people["subscription_id"])
    return History(
        usage=usage,
        facts=facts,
        lines={name: people[name][has_line] for name in LINE_COLUMNS},
        profiles={name: people[name][first] for name in PROFILE_COLUMNS},
    )


PROFILE_COLUMNS = ("customer_id", "customer_type", "region")
LINE_COLUMNS = ("customer_id", "subscription_id", "activated_at", "closed_at", "payment_mode", "contract_end")


async def read_history(
    session: AsyncSession,
    *,
    until: datetime,
    customers: Sequence[str] | None = None,
    between: tuple[str, str] | None = None,
    since: datetime | None = None,
) -> History:
    """What the store knows up to `until` of `customers`, or of the ids `between` two (inclusive), or of everyone
    not erased: usage since `since` (default: all), every fact and line. Labels need what comes after a snapshot:
    pass the horizon's end as `until`. Days and times come as numbers (see `History`)."""
    since_day = None if since is None else since.astimezone(SHANGHAI).date()
    reads = _reads(session.bind.dialect.name, until, until.astimezone(SHANGHAI).date(), since_day)
    if between is not None:
        reads = reads.limited(lambda column: column.between(*between))
    if customers is not None:
        ids = list(customers)
        reads = reads.limited(lambda column: column.in_(ids))
    return _history(
        await _table(session, reads.people), await _table(session, reads.usage), await _table(session, reads.facts)
    )


async def _table(session: AsyncSession, query: Any) -> Table:
    """The rows as columns of Python values (numbers are made floats where the features read them); through the
    session's connection, as plain rows."""
    result = await (await session.connection()).execute(query)
    names = list(result.keys())
    rows = result.all()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {name: np.asarray(column, dtype=object) for name, column in zip(names, columns, strict=True)}


@cache
def _one_customer(dialect: str) -> tuple[Select[tuple[str]], dict[str, list[str]]]:
    """One customer's history as one statement (the parts as JSON arrays), built once per dialect, and each
    part's column names."""
    reads = _reads(
        dialect,
        bindparam("until", type_=UtcDateTime()),
        bindparam("until_day", type_=Date()),
        bindparam("since_day", type_=Date()),
    ).limited(lambda column: column == bindparam("customer_id", type_=String()))
    parts = {"people": reads.people, "usage": reads.usage, "facts": reads.facts}
    names = {part: [c.key for c in query.selected_columns] for part, query in parts.items()}
    return document(**{part: rows_json(query) for part, query in parts.items()}), names


async def read_customer_history(db: Database, customer_id: str, *, until: datetime, since: datetime) -> History:
    """`read_history` of one customer in one round trip, outside any transaction (one statement is its own
    snapshot): what the online score reads on every request."""
    statement, names = _one_customer(db.dialect)
    found = loads(
        await db.read_one(
            statement,
            {
                "customer_id": customer_id,
                "until": until,
                "until_day": until.astimezone(SHANGHAI).date(),
                "since_day": since.astimezone(SHANGHAI).date(),
            },
        )
    )
    tables = {
        part: {name: np.asarray([row[name] for row in found[part]], dtype=object) for name in columns}
        for part, columns in names.items()
    }
    return _history(tables["people"], tables["usage"], tables["facts"])


def labels(history: History, rows: pd.DataFrame, kind: str, horizon_days: int) -> np.ndarray:
    """Per row (customer_id, as_of), 1 when the horizon after the snapshot saw the outcome of `kind`."""
    start = snapshot_seconds(rows["as_of"])
    key = pd.DataFrame(
        {"customer_id": rows["customer_id"].to_numpy(), "start": start, "end": start + horizon_days * DAY}
    )
    key["row"] = np.arange(len(key))
    if kind == "churn":
        lines = pd.DataFrame(
            {
                "customer_id": as_objects(history.lines["customer_id"]),
                "activated_at": as_floats(history.lines["activated_at"]),
                "closed_at": as_floats(history.lines["closed_at"]),
            }
        )
        joined = key.merge(lines, on="customer_id")
        open_at_end = (joined["activated_at"] <= joined["end"]) & ~(joined["closed_at"] <= joined["end"])
        out = np.ones(len(key), dtype=np.int8)
        out[joined.loc[open_at_end, "row"].unique()] = 0
        return out
    facts = pd.DataFrame({name: as_objects(column) for name, column in history.facts.items()})
    quantity = pd.to_numeric(facts["quantity"], errors="coerce").fillna(0)
    bad = (
        ((facts["kind"] == FactKind.PAYMENT_OVERDUE) & (quantity >= BAD_DEBT_DAYS_OVERDUE))
        | ((facts["kind"] == FactKind.COLLECTION_STATUS) & facts["detail"].isin(COLLECTION_STAGES[BAD_DEBT_STAGE:]))
        | ((facts["kind"] == FactKind.LINE_TERMINATED) & (facts["detail"] == "arrears"))
    )
    outcomes = facts.loc[bad, ["customer_id", "occurred_at"]].astype({"occurred_at": np.float64})
    joined = key.merge(outcomes, on="customer_id")
    hit = joined.loc[(joined["occurred_at"] > joined["start"]) & (joined["occurred_at"] <= joined["end"]), "row"]
    out = np.zeros(len(key), dtype=np.int8)
    out[hit.unique()] = 1
    return out


def to_training_set(frame: pd.DataFrame, label: np.ndarray, kind: str, horizon_days: int) -> TrainingSet:
    return TrainingSet(
        features=frame[list(FEATURE_NAMES)].reset_index(drop=True),
        label=label,
        customer_id=frame["customer_id"].to_numpy(dtype=object),
        as_of=pd.to_datetime(frame["as_of"], utc=True)
        .dt.tz_convert(SHANGHAI)
        .dt.tz_localize(None)
        .to_numpy(dtype="datetime64[D]"),
        source="feature_store",
        kind=kind,
        horizon_days=horizon_days,
    )


async def build(
    session: AsyncSession, kind: str, *, horizon_days: int, snapshot_hour: int, months: int = 12
) -> TrainingSet:
    """The training set of `kind` from the store: up to `months` monthly snapshots, the latest usable ones."""
    span = await store_span(session)
    if span is None:
        raise NotEnoughHistory("the feature store is empty: no events have arrived yet")
    snapshots = usable_snapshots(span, horizon_days, snapshot_hour, months)
    history = await read_history(session, until=snapshots[-1] + timedelta(days=horizon_days, seconds=1))
    return assemble(history, snapshots, kind, horizon_days)


def assemble(history: History, snapshots: Sequence[datetime], kind: str, horizon_days: int) -> TrainingSet:
    """Features as of each snapshot (`compute` reads only what came before it) and labels from what came after."""
    frame = compute(history, snapshots)
    if kind == "bad_debt":
        frame = frame[frame["collection_stage"] < BAD_DEBT_STAGE].reset_index(drop=True)
    return to_training_set(frame, labels(history, frame, kind, horizon_days), kind, horizon_days)
