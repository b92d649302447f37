"""Customer search (客户查询) in one statement: the exact match and the prefix range of the key the agent typed, each
an index range scan stopped by LIMIT, with the summary a hit shows (and the customer's value tier) joined on.

A search is the contact centre's busiest read after the 360 view, so it gets the same treatment: the statement is
built once per kind of search and run through `Database.read_one`, with no request transaction around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, String, bindparam, select

from crm_customer.domain.party import portfolio, prefix_upper, sold_by
from crm_customer.models import BillingAccount, Customer, CustomerMetrics, Subscription
from crm_kit.db import Database
from crm_kit.sqljson import document, loads, rows_json

KEYS = ("name", "phone", "id_card", "account", "registration_no")
DIGIT_KEYS = ("phone", "id_card")
"""Keys whose values are digits (an ID card's check character aside), compared the same in every collation."""


@dataclass
class Hit:
    """A customer the term found, with what matched: the numbers for a phone search, the account for an account
    search; `exact` when the whole value matched, not only its start."""

    customer: dict[str, Any]
    exact: bool
    msisdn: list[str] = field(default_factory=list)
    account_id: str | None = None


def _key(by: str, dialect: str) -> tuple[ColumnElement[Any], Select[Any]]:
    """The column the term is compared with, and the rows it is read from (a hit's summary columns joined on)."""
    summary = (
        Customer.id,
        Customer.name,
        Customer.customer_type,
        Customer.status,
        Customer.region,
        Customer.id_card_no,
        Customer.registration_no,
        Customer.key_account,
        CustomerMetrics.value_tier,
    )
    if by == "phone":
        key: ColumnElement[Any] = Subscription.msisdn
        rows = select(*summary, key.label("matched")).join(Customer, Customer.id == Subscription.customer_id)
    elif by == "account":
        # byte order, so a prefix range finds exactly the ids that start with it: COLLATE "C" on PostgreSQL
        # (what ix_billing_account_id_c indexes); SQLite compares bytes already
        key = BillingAccount.id.collate("C") if dialect == "postgresql" else BillingAccount.id
        rows = select(*summary, key.label("matched")).join(Customer, Customer.id == BillingAccount.customer_id)
    else:
        key = {"name": Customer.name_key, "id_card": Customer.id_card_no, "registration_no": Customer.registration_no}[
            by
        ]
        rows = select(*summary, key.label("matched"))
    return key, rows.outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)


@cache
def search_query(
    by: str, exact: bool, bounded: bool, portfolio_only: bool, dialect: str, partner_only: bool = False
) -> Select[tuple[str]]:
    """The statement for one kind of search, built once: parameters `term`, `limit`, and `upper` (the smallest
    value above the prefix range) when `bounded`, `manager` when the caller sees only their portfolio, `partner`
    when only the customers a partner brought in."""
    key, rows = _key(by, dialect)
    term = bindparam("term", type_=String)
    limit = bindparam("limit", type_=Integer)
    rows = rows.where(Customer.merged_into.is_(None))
    if portfolio_only:
        rows = rows.where(portfolio(bindparam("manager", type_=String)))
    if partner_only:
        rows = rows.where(sold_by(bindparam("partner", type_=String)))
    parts = {"exact": rows_json(rows.where(key == term).order_by(key).limit(limit))}
    if not exact:
        in_range = key >= term
        if bounded:
            in_range &= key < bindparam("upper", type_=String)
        parts["prefix"] = rows_json(rows.where(in_range, key != term).order_by(key).limit(limit))
    return document(**parts)


async def search(
    db: Database,
    by: str,
    term: str,
    *,
    exact: bool,
    limit: int,
    manager: str | None = None,
    partner: str | None = None,
) -> list[Hit]:
    """Up to `limit` customers: those whose `by` value is `term` first, then those whose value starts with it, in
    the value's order; merged duplicates never, only `manager`'s key accounts when given, and only the customers
    `partner` brought in when given."""
    upper = None if exact else prefix_upper(term, digits=by in DIGIT_KEYS)
    statement = search_query(by, exact, upper is not None, manager is not None, db.dialect, partner is not None)
    parameters: dict[str, Any] = {"term": term, "limit": limit}
    if upper is not None:
        parameters["upper"] = upper
    if manager is not None:
        parameters["manager"] = manager
    if partner is not None:
        parameters["partner"] = partner
    found = loads(await db.read_one(statement, parameters))
    hits: dict[str, Hit] = {}
    for part in ("exact", "prefix"):
        # UTF-8 byte order is code point order: sorting the strings here is the index's order
        for row in sorted(found.get(part, []), key=lambda r: r["matched"]):
            matched = row.pop("matched")
            hit = hits.get(row["id"])
            if hit is None:
                row["key_account"] = bool(row["key_account"])
                hit = hits[row["id"]] = Hit(customer=row, exact=part == "exact")
            if by == "phone":
                hit.msisdn.append(matched)
            elif by == "account" and hit.account_id is None:
                hit.account_id = matched
    return list(hits.values())[:limit]
