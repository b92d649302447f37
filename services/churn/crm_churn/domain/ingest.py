"""Feature-store ingestion (特征库入库): what each consumed event changes in the store, and the one writer of those
changes, shared by the consumer (one event at a time, in the runner's transaction) and the history loader (a BOSS
export or the simulator: millions of events, the last usage summary per line and day kept in memory, then
bulk-written).

Usage is stored per line and day and each summary replaces the line's day: the contract's figures are day totals and
a corrected summary (new BOSS event id, same line and day) replaces the earlier one, so adding would count twice.

Everything is stored at the time it happened in the business (the event's own time: `usage_date`, `paid_at`,
`attempted_at`… or `occurred_at`), never at the time it was processed, so a training snapshot taken as of a past
day sees only what had happened by then (point-in-time correct). Erased customers (PIPL 删除权) keep nothing
behavioural and later events for them are dropped; a merged duplicate's history (客户合并) becomes the survivor's,
and its later events go to the survivor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from crm_churn.domain.store import FactKind
from crm_churn.models import Fact, Line, Profile, Score, UsageDay
from crm_kit.db import Database, insert_ignoring_duplicates, insert_many

ACTIVATED = "billing.subscription.activated.v1"
PLAN_CHANGED = "billing.subscription.plan_changed.v1"
SUSPENDED = "billing.subscription.suspended.v1"
RESUMED = "billing.subscription.resumed.v1"
TERMINATED = "billing.subscription.terminated.v1"
PORTED_OUT = "billing.subscription.ported_out.v1"
SIM_SWAPPED = "billing.subscription.sim_swapped.v1"
ADDON_ORDERED = "billing.subscription.addon_ordered.v1"
USAGE_RECORDED = "billing.usage.recorded.v1"
INVOICE_ISSUED = "billing.invoice.issued.v1"
PAYMENT_RECEIVED = "billing.payment.received.v1"
PAYMENT_FAILED = "billing.payment.failed.v1"
PAYMENT_REFUNDED = "billing.payment.refunded.v1"
PAYMENT_OVERDUE = "billing.payment.overdue.v1"
RECHARGED = "billing.payment.recharged.v1"
COLLECTION_STATUS_CHANGED = "billing.account.collection_status_changed.v1"
CREDIT_LIMIT_CHANGED = "billing.account.credit_limit_changed.v1"
TICKET_CREATED = "ticketing.ticket.created.v1"
TICKET_STATE_CHANGED = "ticketing.ticket.state_changed.v1"
TICKET_RESOLVED = "ticketing.ticket.resolved.v1"
TICKET_CLOSED = "ticketing.ticket.closed.v1"
TICKET_SLA_BREACHED = "ticketing.ticket.sla_breached.v1"
TICKET_CSAT_RECORDED = "ticketing.ticket.csat_recorded.v1"
CONTACT_SENT = "campaign.contact.sent.v1"
CONTACT_RESPONDED = "campaign.contact.responded.v1"
PROFILE_CREATED = "customer.profile.created.v1"
PROFILE_UPDATED = "customer.profile.updated.v1"
PROFILE_ERASED = "customer.profile.erased.v1"
PROFILE_MERGED = "customer.profile.merged.v1"

REOPENED_FROM = frozenset({"resolved", "closed"})
REOPENED_TO = frozenset({"acknowledged", "inProgress"})
ENDED_UNRESOLVED = frozenset({"cancelled", "rejected"})
"""A ticket cancelled (撤单) or rejected is no longer open, as a closed one."""

FLUSH_EVERY = 200_000
"""Events the history loader takes in before it writes: the buffers stay a few hundred MB at most."""


# --- the changes an event makes ----------------------------------------------------------------------------------


class Usage(NamedTuple):
    """One line's day of usage, replacing what was known of that line's day (`day` as the event writes it,
    YYYY-MM-DD: parsed once per day written, not once per line and day)."""

    customer_id: str
    day: str
    subscription_id: str
    voice_minutes: int
    sms_count: int
    data_mb: int
    roaming_mb: int
    roaming_lines: int
    charged_fen: int


class NewFact(NamedTuple):
    customer_id: str
    occurred_at: datetime
    kind: FactKind
    amount_fen: int | None = None
    quantity: int | None = None
    detail: str | None = None
    ref: str | None = None


class LineOpened(NamedTuple):
    customer_id: str
    subscription_id: str
    activated_at: datetime
    payment_mode: str
    contract_end: date | None
    dealer_code: str | None


class LineClosed(NamedTuple):
    customer_id: str
    subscription_id: str
    closed_at: datetime
    close_kind: str


class ProfileSeen(NamedTuple):
    """What is known of the customer at `seen_at`; a None leaves what the store holds."""

    customer_id: str
    seen_at: datetime
    customer_type: str | None
    region: str | None


class Erased(NamedTuple):
    customer_id: str
    erased_at: datetime


class Merged(NamedTuple):
    """`customer_id` is the duplicate merged away (被合并方)."""

    customer_id: str
    survivor_id: str
    merged_at: datetime


Change = Usage | NewFact | LineOpened | LineClosed | ProfileSeen | Erased | Merged
RESHAPING = (Erased, Merged)
"""Changes done at once, not buffered: they rewrite what is already stored."""


def _at(value: str) -> datetime:
    """An RFC 3339 time of the contracts (always with an offset) in UTC."""
    return datetime.fromisoformat(value.upper()).astimezone(UTC)


def _fact(data: dict[str, Any], kind: FactKind, when: str = "occurred_at", **columns: Any) -> list[Change]:
    """A fact at the time in the data's field `when`: the event's own time of what happened."""
    return [NewFact(data["customer_id"], _at(data[when]), kind, **columns)]


def _usage(d: dict[str, Any]) -> list[Change]:
    """Roaming MB is the roaming part the BOSS split out, else the whole day's data when the line roamed."""
    roaming = d["roaming"]
    roaming_mb = d.get("roaming_data_mb")
    if roaming_mb is None:
        roaming_mb = d["data_mb"] if roaming else 0
    return [
        Usage(
            d["customer_id"],
            d["usage_date"],
            d["subscription_id"],
            d["voice_minutes"],
            d["sms_count"],
            d["data_mb"],
            roaming_mb,
            1 if roaming else 0,
            d.get("charged_fen") or 0,
        )
    ]


def _activated(d: dict[str, Any]) -> list[Change]:
    at = _at(d["occurred_at"])
    cid, sub = d["customer_id"], d["subscription_id"]
    contract_end = d.get("contract_end")
    return [
        ProfileSeen(cid, at, d["customer"]["type"], d["customer"]["region"]),
        LineOpened(
            cid,
            sub,
            at,
            d["payment_mode"],
            date.fromisoformat(contract_end) if contract_end else None,
            d.get("dealer_code"),
        ),
        NewFact(
            cid, at, FactKind.LINE_ACTIVATED, amount_fen=d["plan"]["monthly_fee_fen"], detail=d["payment_mode"], ref=sub
        ),
    ]


def _closed(kind: FactKind, close_kind: str, detail_field: str) -> Callable[[dict[str, Any]], list[Change]]:
    def closed(d: dict[str, Any]) -> list[Change]:
        at = _at(d["occurred_at"])
        return [
            LineClosed(d["customer_id"], d["subscription_id"], at, close_kind),
            NewFact(d["customer_id"], at, kind, detail=d[detail_field], ref=d["subscription_id"]),
        ]

    return closed


def _plan_changed(d: dict[str, Any]) -> list[Change]:
    """The contract names the old plan by code only, so the old fee (quantity) stays empty: it is the amount of the
    line's fact before this one (its activation or last plan change), as of any moment."""
    return _fact(d, FactKind.PLAN_CHANGED, amount_fen=d["plan"]["monthly_fee_fen"], ref=d["subscription_id"])


def _state_changed(d: dict[str, Any]) -> list[Change]:
    """Only what moves the count of open tickets the other events do not: a reopening (重开) and an ending without
    a resolution. Resolved and closed come as events of their own."""
    if d["from_state"] in REOPENED_FROM and d["to_state"] in REOPENED_TO:
        return _fact(d, FactKind.TICKET_REOPENED, ref=d["ticket_id"])
    if d["to_state"] in ENDED_UNRESOLVED:
        return _fact(d, FactKind.TICKET_CLOSED, ref=d["ticket_id"])
    return []


def _erased(d: dict[str, Any]) -> list[Change]:
    return [Erased(d["customer_id"], _at(d["erased_at"]))]


def _merged(d: dict[str, Any]) -> list[Change]:
    return [Merged(d["merged_id"], d["survivor_id"], _at(d["merged_at"]))]


MAPPERS: dict[str, Callable[[dict[str, Any]], list[Change]]] = {
    ACTIVATED: _activated,
    PLAN_CHANGED: _plan_changed,
    SUSPENDED: lambda d: _fact(d, FactKind.LINE_SUSPENDED, detail=d["reason"], ref=d["subscription_id"]),
    RESUMED: lambda d: _fact(d, FactKind.LINE_RESUMED, ref=d["subscription_id"]),
    TERMINATED: _closed(FactKind.LINE_TERMINATED, "terminated", "reason"),
    PORTED_OUT: _closed(FactKind.LINE_PORTED_OUT, "ported_out", "recipient_operator"),
    SIM_SWAPPED: lambda d: _fact(d, FactKind.SIM_SWAPPED, ref=d["subscription_id"]),
    ADDON_ORDERED: lambda d: _fact(
        d,
        FactKind.ADDON_ORDERED,
        amount_fen=d["addon"]["price_fen"],
        detail=d["addon"]["kind"],
        ref=d["subscription_id"],
    ),
    USAGE_RECORDED: _usage,
    INVOICE_ISSUED: lambda d: _fact(
        d, FactKind.INVOICE_ISSUED, "issued_at", amount_fen=d["amount_due_fen"], ref=d["invoice_id"]
    ),
    PAYMENT_RECEIVED: lambda d: _fact(
        d, FactKind.PAYMENT_RECEIVED, "paid_at", amount_fen=d["amount_fen"], ref=d.get("invoice_id")
    ),
    PAYMENT_FAILED: lambda d: _fact(
        d,
        FactKind.PAYMENT_FAILED,
        "attempted_at",
        amount_fen=d["amount_fen"],
        detail=d["reason"],
        ref=d.get("invoice_id"),
    ),
    PAYMENT_REFUNDED: lambda d: _fact(d, FactKind.PAYMENT_REFUNDED, "refunded_at", amount_fen=d["amount_fen"]),
    PAYMENT_OVERDUE: lambda d: _fact(
        d,
        FactKind.PAYMENT_OVERDUE,
        amount_fen=d["amount_overdue_fen"],
        quantity=d["days_overdue"],
        ref=d["invoice_id"],
    ),
    RECHARGED: lambda d: _fact(
        d, FactKind.RECHARGED, "recharged_at", amount_fen=d["amount_fen"], ref=d["subscription_id"]
    ),
    COLLECTION_STATUS_CHANGED: lambda d: _fact(
        d, FactKind.COLLECTION_STATUS, amount_fen=d.get("outstanding_fen"), detail=d["status"]
    ),
    CREDIT_LIMIT_CHANGED: lambda d: _fact(d, FactKind.CREDIT_LIMIT, amount_fen=d["to_limit_fen"]),
    TICKET_CREATED: lambda d: _fact(
        d,
        FactKind.TICKET_OPENED,
        quantity=1 if d["ticket_type"] == "complaint" else 0,
        detail=d["category"],
        ref=d["ticket_id"],
    ),
    TICKET_STATE_CHANGED: _state_changed,
    TICKET_RESOLVED: lambda d: _fact(d, FactKind.TICKET_RESOLVED, ref=d["ticket_id"]),
    TICKET_CLOSED: lambda d: _fact(d, FactKind.TICKET_CLOSED, ref=d["ticket_id"]),
    TICKET_SLA_BREACHED: lambda d: _fact(d, FactKind.TICKET_SLA_BREACHED, detail=d["clock"], ref=d["ticket_id"]),
    TICKET_CSAT_RECORDED: lambda d: _fact(d, FactKind.CSAT, quantity=d["score"], ref=d["ticket_id"]),
    CONTACT_SENT: lambda d: _fact(d, FactKind.CONTACT_SENT, detail=d["channel"], ref=d["campaign_id"]),
    CONTACT_RESPONDED: lambda d: _fact(d, FactKind.CONTACT_RESPONDED, detail=d["response"], ref=d["campaign_id"]),
    PROFILE_CREATED: lambda d: [ProfileSeen(d["customer_id"], _at(d["created_at"]), d["customer_type"], d["region"])],
    PROFILE_UPDATED: lambda d: [
        ProfileSeen(d["customer_id"], _at(d["updated_at"]), d.get("customer_type"), d.get("region"))
    ],
    PROFILE_ERASED: _erased,
    PROFILE_MERGED: _merged,
}
"""Every event type the store learns from, and what it makes of one; a type not here is not consumed."""

CONSUMED = tuple(MAPPERS)


def changes(event_type: str, data: dict[str, Any]) -> list[Change]:
    """What the event (of a type in `MAPPERS`, its data valid under its contract) changes in the store."""
    return MAPPERS[event_type](data)


def boss_record_event(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A BOSS push record (`{"event_id", "event_type": "usage.recorded", "data"}`) as the billing adapter publishes
    it: `billing.usage.recorded.v1`, the BOSS's event id in the data as `boss_event_id`."""
    return f"billing.{record['event_type']}.v1", {"boss_event_id": record["event_id"], **record["data"]}


# --- writing them ----------------------------------------------------------------------------------------------

USAGE_KEY = ("customer_id", "day", "subscription_id")
USAGE_COLUMNS = ("voice_minutes", "sms_count", "data_mb", "roaming_mb", "roaming_lines", "charged_fen")
FACT_COLUMNS = ("customer_id", "occurred_at", "kind", "amount_fen", "quantity", "detail", "ref")


def _dialect_insert(dialect: Dialect, table: Any) -> Any:
    return (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)


def _to_driver(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any]:
    """The column type's conversion of a value to what the driver takes (SQLite: a date as text)."""
    process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


async def _put_usage(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    """Upsert (customer, day, line, figures…) rows, replacing the figures of a line's day already stored (a
    corrected summary): INSERT … ON CONFLICT DO UPDATE SET x = excluded.x, straight on the driver (one row per key
    in `rows`)."""
    conn = await session.connection()
    table: Table = UsageDay.__table__  # type: ignore[assignment]
    columns = (*USAGE_KEY, *USAGE_COLUMNS)
    names = ", ".join(columns)
    replacing = ", ".join(f"{c} = excluded.{c}" for c in USAGE_COLUMNS)
    tail = f"ON CONFLICT ({', '.join(USAGE_KEY)}) DO UPDATE SET {replacing}"
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"${n}::{table.c[c].type.compile(conn.dialect)}[]" for n, c in enumerate(columns, start=1))
        sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) {tail}"  # noqa: S608
        await conn.exec_driver_sql(sql, tuple(list(c) for c in zip(*rows, strict=True)))
        return
    values = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({values}) {tail}"  # noqa: S608
    await conn.exec_driver_sql(sql, rows)


@dataclass
class Counts:
    """What a history load did: events read, those the store took nothing from (a type it does not learn from, a
    ticket move that changes no count, an erased customer's), facts written and line-days of usage written."""

    events: int = 0
    ignored: int = 0
    facts: int = 0
    usage_days: int = 0


class Writer:
    """Takes changes and writes them to the store: usage (the last summary per line and day), facts, lines and
    profiles buffered until `flush`; an erasure or merge flushes first and is done at once, so what came before it is
    erased or moved with the rest.

    `gone` maps each erased customer to None and each merged duplicate to its survivor: changes for them are
    dropped or redirected."""

    def __init__(self, session: AsyncSession, dialect: Dialect, gone: dict[str, str | None]) -> None:
        self.session = session
        self.dialect = dialect
        self.gone = gone
        self.counts = Counts()
        self.usage: dict[tuple[str, str, str], Usage] = {}
        self.facts: list[NewFact] = []
        self.lines: dict[str, LineOpened] = {}
        self.closed: dict[str, LineClosed] = {}
        self.profiles: dict[str, ProfileSeen] = {}
        fact: Table = Fact.__table__  # type: ignore[assignment]
        self._fact_time = _to_driver(fact, "occurred_at", dialect)
        self._day = _to_driver(UsageDay.__table__, "day", dialect)  # type: ignore[arg-type]

    @classmethod
    async def open(cls, session: AsyncSession, customers: Iterable[str] | None = None) -> Writer:
        """A writer knowing which of `customers` (None: of all) are erased or merged, and where the merged went."""
        dialect = (await session.connection()).dialect
        profile = Profile.__table__.c
        query = select(profile.customer_id, profile.erased_at, profile.merged_into).where(
            or_(profile.erased_at.is_not(None), profile.merged_into.is_not(None))
        )
        gone: dict[str, str | None] = {}
        if customers is None:
            for customer_id, erased_at, merged_into in await session.execute(query):
                gone[customer_id] = None if erased_at is not None else merged_into
            return cls(session, dialect, gone)
        wanted, asked = set(customers), set()
        while wanted:  # a survivor may itself have been merged since: follow the chain
            asked |= wanted
            for customer_id, erased_at, merged_into in await session.execute(
                query.where(profile.customer_id.in_(wanted))
            ):
                gone[customer_id] = None if erased_at is not None else merged_into
            wanted = {s for s in gone.values() if s is not None and s not in asked}
        return cls(session, dialect, gone)

    def owner(self, customer_id: str) -> str | None:
        """Whose the customer's events are now: its own, its survivor's after merges, nobody's once erased."""
        while customer_id in self.gone:
            survivor = self.gone[customer_id]
            if survivor is None:
                return None
            customer_id = survivor
        return customer_id

    async def take(self, change: Change) -> bool:
        """Whether the change was kept: not one of an erased customer's."""
        if isinstance(change, Erased):
            await self.flush()
            await self._erase(change)
            return True
        if isinstance(change, Merged):
            await self.flush()
            await self._merge(change)
            return True
        owner = self.owner(change.customer_id)
        if owner is None:
            return False
        if owner != change.customer_id:
            change = change._replace(customer_id=owner)
            if type(change) is ProfileSeen:  # a duplicate's word on who it is does not overwrite the survivor's
                change = change._replace(customer_type=None, region=None)
        self.add(change)
        return True

    def add(self, change: Usage | NewFact | LineOpened | LineClosed | ProfileSeen) -> None:
        """Buffer a change of a customer neither erased nor merged."""
        if type(change) is Usage:
            self.usage[change[:3]] = change
        elif type(change) is NewFact:
            self.facts.append(change)
        elif type(change) is LineOpened:
            self.lines.setdefault(change.subscription_id, change)
        elif type(change) is LineClosed:
            self.closed[change.subscription_id] = change
        elif type(change) is ProfileSeen:
            known = self.profiles.get(change.customer_id)
            if known is not None:
                change = change._replace(
                    seen_at=min(known.seen_at, change.seen_at),
                    customer_type=change.customer_type or known.customer_type,
                    region=change.region or known.region,
                )
            self.profiles[change.customer_id] = change

    async def flush(self) -> None:
        """Write what is buffered: profiles, lines, then the lines closed (their rows may be among those just
        written), usage and facts."""
        if self.profiles:
            await self._upsert_profiles(list(self.profiles.values()))
            self.profiles = {}
        if self.lines:
            rows = [line._asdict() for line in self.lines.values()]
            await self.session.execute(insert_ignoring_duplicates(self.dialect.name, Line.__table__), rows)
            self.lines = {}
        if self.closed:
            await self.session.execute(
                update(Line.__table__)
                .where(Line.__table__.c.subscription_id == bindparam("sid"))
                .values(closed_at=bindparam("at"), close_kind=bindparam("kind")),
                [{"sid": c.subscription_id, "at": c.closed_at, "kind": c.close_kind} for c in self.closed.values()],
            )
            self.closed = {}
        if self.usage:
            days = {d: self._day(date.fromisoformat(d)) for d in {u.day for u in self.usage.values()}}
            await _put_usage(self.session, [(u[0], days[u[1]], *u[2:]) for u in self.usage.values()])
            self.counts.usage_days += len(self.usage)
            self.usage = {}
        if self.facts:
            at = self._fact_time
            rows = [(f.customer_id, at(f.occurred_at), f.kind.value, *f[3:]) for f in self.facts]
            await insert_many(self.session, Fact.__table__, FACT_COLUMNS, rows)  # type: ignore[arg-type]
            self.counts.facts += len(self.facts)
            self.facts = []

    async def _upsert_profiles(self, seen: list[ProfileSeen]) -> None:
        """The newest type and region given win; first seen is the earliest time anything told of the customer."""
        stmt = _dialect_insert(self.dialect, Profile.__table__)
        current = Profile.__table__.c
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["customer_id"],
                set_={
                    "customer_type": func.coalesce(stmt.excluded.customer_type, current.customer_type),
                    "region": func.coalesce(stmt.excluded.region, current.region),
                    "first_seen_at": case(
                        (stmt.excluded.first_seen_at < current.first_seen_at, stmt.excluded.first_seen_at),
                        else_=current.first_seen_at,
                    ),
                },
            ),
            [
                {
                    "customer_id": p.customer_id,
                    "customer_type": p.customer_type,
                    "region": p.region,
                    "first_seen_at": p.seen_at,
                }
                for p in seen
            ],
        )

    async def _forget(self, customer_id: str) -> None:
        """Delete everything behavioural the store holds of the customer: usage, facts, lines, scores."""
        for model in (UsageDay, Fact, Line, Score):
            table: Table = model.__table__  # type: ignore[assignment]
            await self.session.execute(delete(table).where(table.c.customer_id == customer_id))

    async def _mark(self, customer_id: str, at: datetime, **values: Any) -> None:
        """Set `values` on the customer's profile, made (first seen `at`) if the store had none."""
        stmt = _dialect_insert(self.dialect, Profile.__table__).values(
            customer_id=customer_id, first_seen_at=at, **values
        )
        await self.session.execute(stmt.on_conflict_do_update(index_elements=["customer_id"], set_=values))

    async def _erase(self, erased: Erased) -> None:
        """PIPL erasure (删除权): nothing behavioural is kept and nothing later is taken in; the profile stays as a
        tombstone (type, region, when erased) so later events can be recognised and dropped."""
        cid = erased.customer_id
        if cid in self.gone and self.gone[cid] is None:
            return
        await self._forget(cid)
        await self._mark(cid, erased.erased_at, erased_at=erased.erased_at)
        self.gone[cid] = None

    async def _merge(self, merged: Merged) -> None:
        """客户合并: the duplicate's usage, facts and lines become the survivor's; its scores go (the survivor is
        scored as one customer). The survivor's profile is filled from the duplicate's where it knows less. Merged
        into a customer since erased, the duplicate's history is erased too."""
        duplicate = merged.customer_id
        survivor = self.owner(merged.survivor_id)
        if duplicate in self.gone or survivor == duplicate:
            return
        if survivor is None:
            await self._forget(duplicate)
        else:
            await self._move(duplicate, survivor)
        await self._mark(duplicate, merged.merged_at, merged_into=merged.survivor_id)
        self.gone[duplicate] = merged.survivor_id

    async def _move(self, duplicate: str, survivor: str) -> None:
        """Usage rows are re-keyed to the survivor. Lines differ between customers, so a clash on a line's day is
        not expected; should one occur, the survivor's row stays: a summary of the line under the survivor was
        given after the line became the survivor's, so it is the newer."""
        usage = UsageDay.__table__.c
        stmt = _dialect_insert(self.dialect, UsageDay.__table__).from_select(
            [*USAGE_KEY, *USAGE_COLUMNS],
            select(literal(survivor), usage.day, usage.subscription_id, *(usage[c] for c in USAGE_COLUMNS)).where(
                usage.customer_id == duplicate
            ),
        )
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=list(USAGE_KEY)))
        await self.session.execute(delete(UsageDay.__table__).where(usage.customer_id == duplicate))
        for model in (Fact, Line):
            table: Table = model.__table__  # type: ignore[assignment]
            await self.session.execute(
                update(table).where(table.c.customer_id == duplicate).values(customer_id=survivor)
            )
        await self.session.execute(delete(Score.__table__).where(Score.__table__.c.customer_id == duplicate))
        profile = Profile.__table__.c
        known = (
            await self.session.execute(
                select(profile.customer_type, profile.region, profile.first_seen_at).where(
                    profile.customer_id == duplicate
                )
            )
        ).first()
        if known is None:
            return
        self.add(ProfileSeen(survivor, known.first_seen_at, None, None))
        await self.flush()
        await self.session.execute(
            update(Profile.__table__)
            .where(profile.customer_id == survivor)
            .values(
                customer_type=func.coalesce(profile.customer_type, known.customer_type),
                region=func.coalesce(profile.region, known.region),
            )
        )


async def apply(session: AsyncSession, event_type: str, data: dict[str, Any]) -> None:
    """One consumed event into the store, in the caller's transaction (the consumer runner's, with its inbox row)."""
    found = changes(event_type, data)
    writer = await Writer.open(session, {c.customer_id for c in found})
    for change in found:
        await writer.take(change)
    await writer.flush()


async def load_history(db_or_session: Database | AsyncSession, events: Iterable[tuple[str, dict[str, Any]]]) -> Counts:
    """Fill the store from past events (type, data), e.g. a BOSS export or the simulator through `boss_record_event`,
    exactly as the consumer would have from the same events, but in bulk: one transaction (the caller's session's,
    or one of its own on a `Database`), so a failed load leaves nothing behind.

    Events are trusted as valid under their contracts and are not recorded in the consumer's inbox: load what the
    consumer will not also receive."""
    if isinstance(db_or_session, Database):
        async with db_or_session.sessions.begin() as session:
            return await _load(session, events)
    return await _load(db_or_session, events)


async def _load(session: AsyncSession, events: Iterable[tuple[str, dict[str, Any]]]) -> Counts:
    writer = await Writer.open(session)
    counts = writer.counts
    gone = writer.gone
    buffer = writer.add
    buffered = 0
    for event_type, data in events:
        counts.events += 1
        mapper = MAPPERS.get(event_type)
        if mapper is None:
            counts.ignored += 1
            continue
        kept = False
        for change in mapper(data):
            if gone or type(change) in RESHAPING:
                kept = await writer.take(change) or kept
            else:
                buffer(change)
                kept = True
        if not kept:
            counts.ignored += 1
        buffered += 1
        if buffered >= FLUSH_EVERY:
            await writer.flush()
            buffered = 0
    await writer.flush()
    return counts
