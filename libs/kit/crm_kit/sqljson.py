"""Many tables' rows in one round trip: the database hands each set of rows back as one JSON array, and the
caller turns the arrays back into model instances.

A page that shows a little of ten tables (the 360 view) otherwise pays ten statements, and on two cores it is
the per-statement cost (driver hop, ORM bookkeeping) that bounds how many such pages a second a service can
serve, not the database's work. `rows_json(select(...))` is a scalar subquery, so any number of them go into one
SELECT (`document`); `from_rows(Model, rows)` reads one back. SQLite (`json_object`, `json_group_array`) and PostgreSQL
(`json_build_object`, `json_agg`) each get their own spelling.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    ScalarSelect,
    Select,
    Text,
    literal_column,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

Model = TypeVar("Model")


class json_object(FunctionElement[Any]):
    """An object from alternating keys and values."""

    type = JSON()
    inherit_cache = True


class json_array_agg(FunctionElement[Any]):
    """The aggregate of its argument over the group, as a JSON array ([] over no rows)."""

    type = JSON()
    inherit_cache = True


class json_embed(FunctionElement[Any]):
    """A JSON column's stored text, embedded as JSON rather than as a string."""

    type = JSON()
    inherit_cache = True


@compiles(json_object, "sqlite")
def _object_sqlite(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "postgresql")
def _object_postgresql(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_array_agg, "sqlite")
def _agg_sqlite(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


@compiles(json_array_agg, "postgresql")
def _agg_postgresql(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"coalesce(json_agg({compiler.process(element.clauses, **kw)}), '[]'::json)"


@compiles(json_embed, "sqlite")
def _embed_sqlite(element: json_embed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json({compiler.process(element.clauses, **kw)})"


@compiles(json_embed, "postgresql")
def _embed_postgresql(element: json_embed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})::json"


def _key(name: str) -> ColumnElement[Any]:
    """An object key as SQL text, not a bound parameter: a view's hundred keys would otherwise be bound anew on
    every execution. Keys are column and part names (identifiers), never input."""
    if not name.isidentifier():
        raise ValueError(f"not an identifier: {name!r}")
    return literal_column(f"'{name}'")


def rows_json(query: Select[Any]) -> ScalarSelect[Any]:
    """`query`'s rows as one JSON array of objects keyed by column name, for `document`. The order of the array is
    the database's; sort what you read back if order matters."""
    rows = query.subquery()
    pairs: list[ColumnElement[Any]] = []
    for column in rows.c:
        pairs += [_key(column.key), json_embed(column) if isinstance(column.type, JSON) else column]
    return select(json_array_agg(json_object(*pairs))).select_from(rows).scalar_subquery()


def document(**parts: ColumnElement[Any] | ScalarSelect[Any]) -> Select[tuple[str]]:
    """One row, one column: a JSON object with one member per part (a `rows_json` array or a plain value)."""
    pairs: list[ColumnElement[Any]] = []
    for name, part in parts.items():
        pairs += [_key(name), json_embed(part) if isinstance(part.type, JSON) else part]
    return select(cast_text(json_object(*pairs)))


class cast_text(FunctionElement[str]):
    """The document as the text the database wrote, for one `loads` on this side."""

    type = Text()
    inherit_cache = True


@compiles(cast_text, "sqlite")
def _text_sqlite(element: cast_text, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(cast_text, "postgresql")
def _text_postgresql(element: cast_text, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})::text"


def loads(text: str) -> dict[str, Any]:
    """The document. Numbers with a fraction arrive as floats; `from_rows` makes Decimal columns exact again."""
    return orjson.loads(text)  # type: ignore[no-any-return]


def utc_datetime(value: str) -> datetime:
    """A time as the document holds it (ISO text, zoned on PostgreSQL, UTC without a zone on SQLite), in UTC;
    for a time that is not a model's column, such as an aggregate's."""
    at = datetime.fromisoformat(value)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _as_decimal(value: float | int) -> Decimal:
    """Exact for a NUMERIC of up to 15 significant digits: a float's repr is the shortest text that reads back
    as the same float, which is the database's own text for such a number."""
    return Decimal(repr(value))


def _readers(model: type[Any]) -> dict[str, Callable[[Any], Any]]:
    """How each column's JSON value becomes the value the model holds (JSON has no dates, SQLite no booleans)."""
    readers: dict[str, Callable[[Any], Any]] = {}
    for column in model.__table__.columns:
        kind = column.type
        kind = kind.impl if isinstance(kind, TypeDecorator) else kind
        if isinstance(kind, DateTime):
            readers[column.key] = utc_datetime
        elif isinstance(kind, Date):
            readers[column.key] = date.fromisoformat
        elif isinstance(kind, Boolean):
            readers[column.key] = bool
        elif isinstance(kind, Numeric) and kind.asdecimal:
            readers[column.key] = _as_decimal
    return readers


_READERS: dict[type[Any], dict[str, Callable[[Any], Any]]] = {}


def from_rows(model: type[Model], rows: list[dict[str, Any]]) -> list[Model]:
    """Detached, read-only instances of `model` from a `rows_json(select(model)...)` part of a document.

    They are filled the way the ORM fills rows it loads (straight into the instance's state, no change
    events), which is what makes reading a dozen of them cheap; never add them to a session."""
    readers = _READERS.get(model)
    if readers is None:
        readers = _READERS[model] = _readers(model)
    new_instance = model._sa_class_manager.new_instance  # type: ignore[attr-defined]
    found = []
    for row in rows:
        for key, read in readers.items():
            value = row.get(key)
            if value is not None:
                row[key] = read(value)
        instance = new_instance()
        instance.__dict__.update(row)
        found.append(instance)
    return found
