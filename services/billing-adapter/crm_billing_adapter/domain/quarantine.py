"""Working the quarantine (隔离区处理): find what was rejected, fix it, replay it through the same checks as a
push, or give it up with a note. Plain rules, no HTTP; the caller's transaction holds every change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing_adapter.domain import ingest, reading
from crm_billing_adapter.events import event_id_for
from crm_billing_adapter.models import QuarantinedRecord
from crm_kit.db import utcnow
from crm_kit.errors import Conflict, InvalidInput, MalformedBody, NotFound
from crm_kit.events import Contracts

OPEN = "open"
MAX_REPLAY = 1000
NOT_JSON = object()
"""What `record_of` answers for a row whose text is not JSON at all."""
ALREADY_ACCEPTED = "already accepted before with the same content: nothing was published again"

ReplayStatus = Literal["accepted", "duplicate", "rejected", "skipped"]


def event_type_named(name: str) -> str:
    """Operators write `subscription.activated` (the BOSS's word) or the full `billing.subscription.activated.v1`."""
    return name if name.startswith("billing.") else f"billing.{name}.v1"


def within_record(field: str | None) -> str:
    """`records[17].data.msisdn` → `data.msisdn`: the field inside the record, wherever the record sat in its
    batch; `record` when the record as a whole is at fault."""
    return re.sub(r"^records\[\d+\]\.?", "", field or "") or "record"


def field_class(field: str | None) -> str:
    """What kind of mistake a rejection is, for the summary: its field with every array index dropped."""
    return re.sub(r"\[\d+\]", "[]", within_record(field))


@dataclass(frozen=True)
class Filter:
    """What an operator narrows the quarantine to; every part optional. `received_to` is exclusive."""

    status: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    source: str | None = None
    job_id: str | None = None
    reason_contains: str | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        q = QuarantinedRecord
        out: list[ColumnElement[bool]] = []
        if self.status:
            out.append(q.status == self.status)
        if self.event_id:
            out.append(q.boss_event_id == self.event_id)
        if self.event_type:
            out.append(q.event_type == event_type_named(self.event_type))
        if self.source:
            out.append(q.source == self.source)
        if self.job_id:
            out.append(q.job_id == self.job_id)
        if self.reason_contains:
            out.append(q.reason.icontains(self.reason_contains, autoescape=True))
        if self.received_from:
            out.append(q.received_at >= self.received_from)
        if self.received_to:
            out.append(q.received_at < self.received_to)
        return out


async def page(session: AsyncSession, where: Filter, offset: int, limit: int) -> tuple[int, list[QuarantinedRecord]]:
    """One page, newest first, and how many match in all."""
    clauses = where.clauses()
    total = await session.scalar(select(func.count()).select_from(QuarantinedRecord).where(*clauses))
    rows = await session.scalars(
        select(QuarantinedRecord)
        .where(*clauses)
        .order_by(QuarantinedRecord.received_at.desc(), QuarantinedRecord.id)
        .offset(offset)
        .limit(limit)
    )
    return total or 0, list(rows)


@dataclass
class FieldCount:
    field: str
    count: int
    example: str


@dataclass
class Summary:
    """What is going wrong at a glance: the open records by the field at fault and by event type."""

    open: int
    oldest_open_at: datetime | None
    by_field: list[FieldCount]
    by_event_type: list[tuple[str | None, int]]


async def summarise(session: AsyncSession, source: str | None = None, job_id: str | None = None) -> Summary:
    q = QuarantinedRecord
    clauses = Filter(status=OPEN, source=source, job_id=job_id).clauses()
    total, oldest = (await session.execute(select(func.count(), func.min(q.received_at)).where(*clauses))).one()
    classes: dict[str, FieldCount] = {}
    biggest: dict[str, int] = {}
    for field, count, reason in await session.execute(
        select(q.field, func.count(), func.min(q.reason)).where(*clauses).group_by(q.field)
    ):
        key = field_class(field)
        entry = classes.setdefault(key, FieldCount(key, 0, reason))
        entry.count += count
        if count > biggest.get(key, 0):  # the example comes from the commonest spelling of the field
            biggest[key] = count
            entry.example = reason
    types = await session.execute(select(q.event_type, func.count()).where(*clauses).group_by(q.event_type))
    return Summary(
        open=total,
        oldest_open_at=oldest,
        by_field=sorted(classes.values(), key=lambda c: (-c.count, c.field)),
        by_event_type=sorted(((t, n) for t, n in types), key=lambda tn: (-tn[1], tn[0] is None, tn[0] or "")),
    )


async def load(session: AsyncSession, quarantine_id: str, *, lock: bool = False) -> QuarantinedRecord:
    """The row; `lock` (for a change) holds it on PostgreSQL so two operators' changes apply one after the other."""
    query = select(QuarantinedRecord).where(QuarantinedRecord.id == quarantine_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"No quarantined record {quarantine_id}", field="quarantine_id")
    return row


def require_open(row: QuarantinedRecord) -> None:
    if row.status != OPEN:
        done = f" as event {row.replayed_event_id}" if row.replayed_event_id else ""
        raise Conflict(
            f"Quarantined record {row.id} is already {row.status}{done}; only open records can be changed",
            field="status",
        )


def fix(row: QuarantinedRecord, contracts: Contracts, body: bytes) -> None:
    """Save an operator's corrected record (修正) once it passes its contract; a replay then sends it.

    The BOSS event id stays the one the BOSS gave, when it gave a valid one: a record published under another
    id would be published a second time when the BOSS re-sends it.
    """
    require_open(row)
    try:
        value = reading.loads_record(body)
    except reading.UNREADABLE as exc:
        raise MalformedBody(f"Body is not valid JSON: {reading.why_unreadable(exc)}", field="body") from exc
    checked = reading.check_record(contracts, 0, value)
    if isinstance(checked, reading.Rejected):
        raise InvalidInput(checked.reason, field=within_record(checked.field))
    if row.boss_event_id and checked.boss_event_id != row.boss_event_id:
        raise InvalidInput(
            f"event_id must stay {row.boss_event_id!r}, the id the BOSS gave this record", field="event_id"
        )
    row.fixed_raw = reading.json_text(value)
    row.boss_event_id = checked.boss_event_id
    row.event_type = checked.event_type


def record_of(row: QuarantinedRecord) -> Any:
    """What a replay sends: the saved fix, else the record as received; NOT_JSON when that is not JSON at all."""
    try:
        return reading.loads_record(row.fixed_raw if row.fixed_raw is not None else row.raw)
    except reading.UNREADABLE:
        return NOT_JSON


def check_replayable(row: QuarantinedRecord) -> None:
    """409 unless the row is open and holds a record: a body that was never JSON needs a fix first."""
    require_open(row)
    if record_of(row) is NOT_JSON:
        raise Conflict(
            f"Quarantined record {row.id} is not JSON; save a corrected record (PUT .../fix) before replaying it",
            field="raw",
        )


@dataclass
class Replay:
    """What came of replaying one quarantined record."""

    id: str
    status: ReplayStatus
    row: QuarantinedRecord | None = None
    reason: str | None = None
    field: str | None = None


async def replay(session: AsyncSession, contracts: Contracts, rows: list[QuarantinedRecord], who: str) -> list[Replay]:
    """Open rows through `ingest` again (重放), as fixed or as received: an accepted record is published and its
    row resolved, so is a duplicate of a record accepted before; the rest stay open with the new reason.

    One `ingest` call per BOSS source, so two rows carrying the same BOSS record go out once.
    """
    done: dict[str, Replay] = {}
    batches: dict[str, list[tuple[QuarantinedRecord, Any]]] = {}
    for row in rows:
        if row.status != OPEN:
            done[row.id] = Replay(row.id, "skipped", row, f"already {row.status}", "status")
        elif (record := record_of(row)) is NOT_JSON:
            done[row.id] = Replay(row.id, "skipped", row, "not JSON: save a corrected record first", "raw")
        else:
            batches.setdefault(row.source, []).append((row, record))
    now = utcnow()
    for source, batch in batches.items():
        result = await ingest.ingest(
            session, contracts, ingest.Origin(source), [record for _, record in batch], quarantine_rejected=False
        )
        for (row, _), outcome in zip(batch, result.outcomes, strict=True):
            done[row.id] = _settle(row, outcome, who, now)
    return [done[row.id] for row in rows]


def _settle(row: QuarantinedRecord, outcome: reading.Outcome, who: str, now: datetime) -> Replay:
    if outcome.status == "rejected":
        row.reason = outcome.reason or row.reason
        row.field = within_record(outcome.field)
        return Replay(row.id, "rejected", row, row.reason, row.field)
    boss_event_id = str(outcome.event_id)  # an accepted or duplicate record always has its BOSS id
    row.status = "replayed"
    row.boss_event_id = boss_event_id
    row.replayed_event_id = event_id_for(row.source, boss_event_id)
    row.resolved_at = now
    row.resolved_by = who
    row.resolution_note = ALREADY_ACCEPTED if outcome.status == "duplicate" else None
    return Replay(row.id, outcome.status, row)


@dataclass
class BulkReplay:
    results: list[Replay]
    remaining: int
    """Open rows the filter matches beyond the ones tried this time."""


async def replay_many(
    session: AsyncSession,
    contracts: Contracts,
    who: str,
    *,
    ids: list[str] | None = None,
    event_type: str | None = None,
    job_id: str | None = None,
) -> BulkReplay:
    """Replay the rows named by `ids` (in that order), or the oldest 1,000 open rows of an event type and/or a
    file import; an unknown id is skipped and said so."""
    q = QuarantinedRecord
    if ids is not None:
        wanted = list(dict.fromkeys(ids))
        found = {r.id: r for r in await session.scalars(select(q).where(q.id.in_(wanted)).with_for_update())}
        rows = [found[i] for i in wanted if i in found]  # in the order asked: the first copy of a record goes first
        replayed = {r.id: r for r in await replay(session, contracts, rows, who)}
        return BulkReplay(
            [replayed.get(i) or Replay(i, "skipped", reason="no such quarantined record", field="ids") for i in wanted],
            0,
        )
    clauses = Filter(status=OPEN, event_type=event_type, job_id=job_id).clauses()
    total = await session.scalar(select(func.count()).select_from(q).where(*clauses)) or 0
    rows = list(
        await session.scalars(
            select(q).where(*clauses).order_by(q.received_at, q.id).limit(MAX_REPLAY).with_for_update()
        )
    )
    return BulkReplay(await replay(session, contracts, rows, who), total - len(rows))


def discard(row: QuarantinedRecord, who: str, note: str) -> None:
    """Give a record up (作废), saying why; it stays in the quarantine as evidence."""
    require_open(row)
    row.status = "discarded"
    row.resolved_at = utcnow()
    row.resolved_by = who
    row.resolution_note = note
