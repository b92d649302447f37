"""The adapter's rules: parse a push, check each record against its contract, de-duplicate, publish.

A record is accepted (→ outbox → Kafka), a duplicate (already accepted before, same content), or
rejected (kept in quarantine with its reason). Nothing the BOSS handed over is dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from crm_kit.db import insert_ignoring_duplicates, utcnow
from crm_kit.errors import InvalidInput, MalformedBody, PayloadTooLarge, UnsupportedMediaType
from crm_kit.events import Contracts, topic_of
from crm_kit.outbox import stage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing_adapter.events import billing_event, event_id_for
from crm_billing_adapter.models import IngestedRecord, QuarantinedRecord

BOSS_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
MAX_REASON = 2000

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass
class Unparsed:
    """A line that is not JSON; kept as text so it can be quarantined."""

    text: str
    reason: str


@dataclass
class Outcome:
    index: int
    status: Status
    event_id: str | None = None
    reason: str | None = None
    field: str | None = None
    quarantine_id: str | None = None


@dataclass
class Checked:
    """A record that passed its contract, ready to publish."""

    index: int
    boss_event_id: str
    event_type: str
    data: dict[str, Any]
    digest: str


@dataclass
class Rejected:
    index: int
    reason: str
    field: str | None
    raw: str
    boss_event_id: str | None = None
    event_type: str | None = None


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """gzip bodies are inflated with a ceiling, so a small bomb cannot fill memory."""
    if not encoding or encoding.lower() == "identity":
        return body
    if encoding.lower() != "gzip":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none", field="Content-Encoding"
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBody(f"Body is not valid gzip: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"Body inflates beyond {limit} bytes")
    return out


def _loads(text: str | bytes) -> Any:
    # Money is integer fen; parsing decimals as Decimal makes 129.0 fail the contract's "integer".
    return json.loads(text, parse_float=Decimal)


def parse_records(body: bytes, content_type: str) -> list[Any]:
    """The records of a push: `{"records": [...]}` or a JSON array, or NDJSON (one record a line)."""
    media = content_type.split(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        records: list[Any] = []
        for n, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(_loads(line))
            except json.JSONDecodeError as exc:
                records.append(Unparsed(line, f"line {n} is not valid JSON: {exc.msg} at column {exc.colno}"))
        return records
    if media not in JSON_TYPES and media:
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not supported; use application/json or application/x-ndjson",
            field="Content-Type",
        )
    try:
        doc = _loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedBody(f"Body is not valid JSON{where}: {getattr(exc, 'msg', exc)}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        return list(doc["records"])
    if isinstance(doc, list):
        return doc
    raise InvalidInput('Body must be {"records": [...]} or a JSON array of records', field="records")


def _raw(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def check_record(contracts: Contracts, index: int, value: Any) -> Checked | Rejected:
    """One BOSS record against the shape `{event_id, event_type, data}` and its event's contract."""
    at = f"records[{index}]"
    if isinstance(value, Unparsed):
        return Rejected(index, value.reason, at, value.text)
    raw = _raw(value)
    if not isinstance(value, dict):
        return Rejected(index, "record must be a JSON object", at, raw)
    boss_id = value.get("event_id")
    if not isinstance(boss_id, str) or not BOSS_EVENT_ID.match(boss_id):
        return Rejected(index, "event_id is required: 1-64 characters of A-Z a-z 0-9 . _ : -", f"{at}.event_id", raw)
    kind = value.get("event_type")
    event_type = f"billing.{kind}.v1" if isinstance(kind, str) else None
    if event_type is None or not contracts.knows(event_type) or not topic_of(event_type).startswith("billing."):
        known = sorted(
            t.removeprefix("billing.").removesuffix(".v1") for t in contracts.event_types if t.startswith("billing.")
        )
        return Rejected(
            index, f"unknown event_type {kind!r}; known: {', '.join(known)}", f"{at}.event_type", raw, boss_id
        )
    data = value.get("data")
    if not isinstance(data, dict):
        return Rejected(index, "data is required and must be an object", f"{at}.data", raw, boss_id, event_type)
    data = {**data, "boss_event_id": boss_id}
    violations = contracts.violations(event_type, data)
    if violations:
        reason = "; ".join(f"data.{v.field}: {v.message}" if v.field else v.message for v in violations[:5])
        first = violations[0].field
        return Rejected(
            index, reason[:MAX_REASON], f"{at}.data.{first}" if first else f"{at}.data", raw, boss_id, event_type
        )
    digest = hashlib.sha256(_raw({"event_type": kind, "data": data}).encode()).hexdigest()
    return Checked(index, boss_id, event_type, data, digest)


def quarantine(session: AsyncSession, source: str, rejected: Rejected) -> str:
    qid = str(uuid.uuid4())
    session.add(
        QuarantinedRecord(
            id=qid,
            source=source,
            boss_event_id=rejected.boss_event_id,
            event_type=rejected.event_type,
            reason=rejected.reason,
            field=rejected.field,
            raw=rejected.raw,
            status="open",
            received_at=utcnow(),
        )
    )
    return qid


async def ingest(session: AsyncSession, contracts: Contracts, source: str, records: list[Any]) -> BatchResult:
    """Check, de-duplicate and stage a batch in the caller's transaction."""
    result = BatchResult()
    checked: list[Checked] = []
    outcomes: dict[int, Outcome] = {}
    seen_in_batch: dict[str, str] = {}
    for i, value in enumerate(records):
        c = check_record(contracts, i, value)
        if isinstance(c, Rejected):
            outcomes[i] = Outcome(i, "rejected", c.boss_event_id, c.reason, c.field, quarantine(session, source, c))
            continue
        if c.boss_event_id in seen_in_batch:
            outcomes[i] = _repeat(session, source, c, seen_in_batch[c.boss_event_id], value)
            continue
        seen_in_batch[c.boss_event_id] = c.digest
        checked.append(c)

    fresh = await _claim(session, source, checked)
    known = await _digests(session, source, [c.boss_event_id for c in checked if c.boss_event_id not in fresh])
    events = []
    for c in checked:
        if c.boss_event_id in fresh:
            outcomes[c.index] = Outcome(c.index, "accepted", c.boss_event_id)
            events.append(billing_event(source, c.event_type, c.data))
        else:
            outcomes[c.index] = _repeat(session, source, c, known.get(c.boss_event_id, ""), records[c.index])
    await stage(session, contracts, events)
    await session.flush()
    result.outcomes = [outcomes[i] for i in range(len(records))]
    return result


def _repeat(session: AsyncSession, source: str, c: Checked, first_digest: str, value: Any) -> Outcome:
    """A BOSS id seen before: a true duplicate if the content matches, otherwise a conflict to look at."""
    if first_digest == c.digest:
        return Outcome(c.index, "duplicate", c.boss_event_id)
    reason = "event_id was already used for a record with different content"
    rejected = Rejected(c.index, reason, f"records[{c.index}].event_id", _raw(value), c.boss_event_id, c.event_type)
    return Outcome(c.index, "rejected", c.boss_event_id, reason, rejected.field, quarantine(session, source, rejected))


async def _claim(session: AsyncSession, source: str, checked: list[Checked]) -> set[str]:
    """Insert the log rows; the ones that went in are ours, the rest were accepted before (or concurrently)."""
    if not checked:
        return set()
    now = utcnow()
    table = IngestedRecord.__table__
    statement = insert_ignoring_duplicates(session.bind.dialect.name, table).returning(table.c.boss_event_id)
    rows = [
        {
            "source": source,
            "boss_event_id": c.boss_event_id,
            "event_id": event_id_for(source, c.boss_event_id),
            "event_type": c.event_type,
            "customer_id": c.data["customer_id"],
            "payload_sha256": c.digest,
            "received_at": now,
        }
        for c in checked
    ]
    inserted: set[str] = set()
    for start in range(0, len(rows), 1000):
        result = await session.execute(statement.values(rows[start : start + 1000]))
        inserted.update(result.scalars().all())
    return inserted


async def _digests(session: AsyncSession, source: str, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 1000):
        rows = await session.execute(
            select(IngestedRecord.boss_event_id, IngestedRecord.payload_sha256).where(
                IngestedRecord.source == source, IngestedRecord.boss_event_id.in_(ids[start : start + 1000])
            )
        )
        out.update({r[0]: r[1] for r in rows})
    return out


def quarantine_unparsable_body(session: AsyncSession, source: str, body: bytes, reason: str) -> str:
    """A push whose body cannot be read at all is still kept, whole, with the reason."""
    text = body.decode("utf-8", errors="replace")
    return quarantine(session, source, Rejected(-1, reason, "body", text))
