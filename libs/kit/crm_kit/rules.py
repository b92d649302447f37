"""A rule language for selecting customers (客户筛选规则), checked and compiled to one SQL WHERE.

A rule is JSON: `{"all": [..]}`, `{"any": [..]}`, `{"not": {..}}` or a leaf `{"field": "arpu_fen", "op": "gte",
"value": 10000}` over a service's own table of fields (`Field`: the column, its kind, the values it may take).
Every mistake is a 422 naming where in the rule it is (`rule.all[2].op`). The customer service's segments and the
campaign service's audiences speak it, each over its own columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_

from crm_kit.errors import InvalidInput
from crm_kit.events import parse_rfc3339

MAX_DEPTH = 8
MAX_LEAVES = 50
MAX_IN_VALUES = 1000
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "between", "is_null")
ORDERED_OPS = ("gt", "gte", "lt", "lte", "between")

TEXT, INTEGER, BOOLEAN, DECIMAL, DATETIME = "text", "integer", "boolean", "decimal", "date-time"


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Node:
    kind: str  # all, any, not
    children: tuple[Rule, ...]


Rule = Leaf | Node


@dataclass(frozen=True)
class Field:
    """A field a rule may name: the SQL expression it compares, its kind, the values it may take; `compiled` for a
    field that is not compared as it is stored (days since a moment)."""

    column: Any
    kind: str
    choices: tuple[str, ...] = ()
    compiled: Callable[[Leaf, datetime], ColumnElement[bool]] | None = None


Fields = Mapping[str, Field]


def days_since(moment: Any) -> Callable[[Leaf, datetime], ColumnElement[bool]]:
    """A field counted in whole days since `moment` (tenure), compiled as bounds on `moment` so an index serves it:
    days ≥ n ⇔ at or before now − n days; days ≤ n ⇔ after now − (n + 1) days."""

    def compiled(leaf: Leaf, now: datetime) -> ColumnElement[bool]:
        def at_least(n: int) -> ColumnElement[bool]:
            return moment <= now - timedelta(days=n)

        def at_most(n: int) -> ColumnElement[bool]:
            return moment > now - timedelta(days=n + 1)

        def equal(n: int) -> ColumnElement[bool]:
            return and_(at_least(n), at_most(n))

        v = leaf.value
        match leaf.op:
            case "eq":
                return equal(v)
            case "ne":
                return and_(moment.is_not(None), not_(equal(v)))
            case "gt":
                return at_least(v + 1)
            case "gte":
                return at_least(v)
            case "lt":
                return at_most(v - 1)
            case "lte":
                return at_most(v)
            case "in":
                return or_(*(equal(n) for n in v))
            case _:
                return and_(at_least(v[0]), at_most(v[1]))

    return compiled


# --- validation ----------------------------------------------------------------------------------------------------


def _bad(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", field=path)


def _scalar(field_name: str, field: Field, value: Any, path: str) -> Any:
    """The value as the column compares it, or 422 naming `path`."""
    if field.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise _bad(path, f"{field_name} is a boolean: expected true or false")
        return value
    if field.kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(path, f"{field_name} is an integer: expected a whole number")
        return value
    if field.kind == DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(path, f"{field_name} is a decimal: expected a number")
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise _bad(path, f"{field_name} is a decimal: {value!r} is not a finite number") from exc
    if not isinstance(value, str):
        expected = "an RFC 3339 date-time string" if field.kind == DATETIME else "a string"
        raise _bad(path, f"{field_name} is {'a date-time' if field.kind == DATETIME else 'text'}: expected {expected}")
    if field.kind == DATETIME:
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise _bad(path, f"{field_name} needs an RFC 3339 date-time with a zone offset: {exc}") from exc
    if field.choices and value not in field.choices:
        raise _bad(path, f"{field_name} is one of {', '.join(field.choices)}; not {value!r}")
    return value


def _leaf(node: dict[str, Any], path: str, fields: Fields) -> Leaf:
    unknown = sorted(set(node) - {"field", "op", "value"})
    if unknown:
        raise _bad(f"{path}.{unknown[0]}", "unknown key; a condition has field, op and value")
    for key in ("field", "op", "value"):
        if key not in node:
            raise _bad(f"{path}.{key}", "missing")
    name, op, value = node["field"], node["op"], node["value"]
    if not isinstance(name, str) or name not in fields:
        raise _bad(f"{path}.field", f"unknown field {name!r}; known: {', '.join(fields)}")
    if not isinstance(op, str) or op not in OPS:
        raise _bad(f"{path}.op", f"unknown op {op!r}; known: {', '.join(OPS)}")
    field = fields[name]
    where = f"{path}.value"
    if op == "is_null":
        if not isinstance(value, bool):
            raise _bad(where, "is_null takes true or false")
        return Leaf(name, op, value)
    if op in ORDERED_OPS and field.kind in (TEXT, BOOLEAN):
        raise _bad(f"{path}.op", f"{op} does not apply to {name} ({field.kind}); use eq, ne or in")
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            raise _bad(where, f"in takes a list of 1 to {MAX_IN_VALUES} values")
        return Leaf(name, op, tuple(_scalar(name, field, v, f"{where}[{i}]") for i, v in enumerate(value)))
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _bad(where, "between takes [low, high]")
        low, high = (_scalar(name, field, v, f"{where}[{i}]") for i, v in enumerate(value))
        if low > high:
            raise _bad(where, "between takes [low, high] with low ≤ high")
        return Leaf(name, op, (low, high))
    if value is None:
        raise _bad(where, f"{op} needs a value; to match a missing value use is_null")
    return Leaf(name, op, _scalar(name, field, value, where))


def parse_rule(rule: Any, fields: Fields, path: str = "rule") -> Rule:
    """The rule checked and parsed against `fields`; any mistake is a 422 naming where in the rule it is."""
    leaves = 0

    def walk(node: Any, at: str, depth: int) -> Rule:
        nonlocal leaves
        if depth > MAX_DEPTH:
            raise _bad(at, f"rules nest at most {MAX_DEPTH} levels deep")
        if not isinstance(node, dict):
            raise _bad(at, "expected an object: all, any, not, or a condition {field, op, value}")
        groups = [k for k in ("all", "any", "not") if k in node]
        if not groups:
            leaves += 1
            if leaves > MAX_LEAVES:
                raise _bad(at, f"a rule has at most {MAX_LEAVES} conditions")
            return _leaf(node, at, fields)
        kind = groups[0]
        if len(node) != 1:
            extra = sorted(k for k in node if k != kind)[0]
            raise _bad(f"{at}.{extra}", f"{kind} stands alone in its object")
        inner = node[kind]
        if kind == "not":
            return Node(kind, (walk(inner, f"{at}.not", depth + 1),))
        if not isinstance(inner, list) or not inner:
            raise _bad(f"{at}.{kind}", f"{kind} takes a non-empty list of rules")
        return Node(kind, tuple(walk(child, f"{at}.{kind}[{i}]", depth + 1) for i, child in enumerate(inner)))

    return walk(rule, path, 1)


# --- compilation ---------------------------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
}


def _compile_leaf(leaf: Leaf, fields: Fields, now: datetime) -> ColumnElement[bool]:
    field = fields[leaf.field]
    column = field.column
    if leaf.op == "is_null":
        return column.is_(None) if leaf.value else column.is_not(None)
    if field.compiled is not None:
        return field.compiled(leaf, now)
    if leaf.op == "in":
        return column.in_(leaf.value)
    if leaf.op == "between":
        return column.between(*leaf.value)
    return _COMPARE[leaf.op](column, leaf.value)


def compile_rule(rule: Rule, fields: Fields, now: datetime) -> ColumnElement[bool]:
    """The rule as one WHERE over the columns of `fields`. A comparison never matches a missing value (SQL's NULL),
    not even under `not`; `is_null` asks for one."""
    if isinstance(rule, Leaf):
        return _compile_leaf(rule, fields, now)
    parts = [compile_rule(child, fields, now) for child in rule.children]
    if rule.kind == "all":
        return and_(*parts)
    if rule.kind == "any":
        return or_(*parts)
    return not_(parts[0])
