"""What happens to a checked batch: accepted (→ outbox → Kafka), a duplicate of a record accepted before
(same content), or rejected and kept in quarantine with its reason. Nothing the BOSS handed over is dropped."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing_adapter.domain.reading import (
    BatchResult,
    Checked,
    Outcome,
    Rejected,
    bytes_text,
    check_record,
    json_text,
)
from crm_billing_adapter.events import billing_event, event_id_for
from crm_billing_adapter.models import IngestedRecord, QuarantinedRecord
from crm_billing_adapter.observability import BATCH_SECONDS, RECORDS
from crm_kit.db import insert_many, utcnow
from crm_kit.events import Contracts
from crm_kit.outbox import stage_prepared


@dataclass(frozen=True)
class Origin:
    """Where a batch came from: a push by a BOSS source, or lines of an import file (then `line_numbers`
    holds each record's line, in the order of the records)."""

    source: str
    job_id: str | None = None
    line_numbers: Sequence[int] | None = None

    @property
    def channel(self) -> str:
        return "file" if self.job_id else "push"

    def line_of(self, index: int) -> int | None:
        return self.line_numbers[index] if self.line_numbers is not None and index >= 0 else None


def quarantine(session: AsyncSession, origin: Origin, rejected: Rejected) -> str:
    qid = str(uuid.uuid4())
    session.add(
        QuarantinedRecord(
            id=qid,
            source=origin.source,
            boss_event_id=rejected.boss_event_id,
            event_type=rejected.event_type,
            reason=rejected.reason,
            field=rejected.field,
            raw=rejected.raw,
            status="open",
            received_at=utcnow(),
            job_id=origin.job_id,
            line_no=origin.line_of(rejected.index),
        )
    )
    return qid


async def ingest(
    session: AsyncSession,
    contracts: Contracts,
    origin: Origin,
    records: list[Any],
    *,
    quarantine_rejected: bool = True,
) -> BatchResult:
    """Check, de-duplicate and stage a batch in the caller's transaction.

    Rejected records are quarantined, unless the caller keeps them itself (`quarantine_rejected=False`:
    a replay from the quarantine updates the row it came from instead of adding one).
    """
    source = origin.source
    channel = origin.channel if quarantine_rejected else "replay"
    started = time.perf_counter()

    def keep(rejected: Rejected) -> str | None:
        return quarantine(session, origin, rejected) if quarantine_rejected else None

    result = BatchResult()
    checked: list[Checked] = []
    repeats: list[Checked] = []
    outcomes: dict[int, Outcome] = {}
    first_in_batch: dict[str, Checked] = {}
    kinds: dict[int, str | None] = {}
    for i, value in enumerate(records):
        c = check_record(contracts, i, value)
        kinds[i] = c.event_type
        if isinstance(c, Rejected):
            outcomes[i] = Outcome(i, "rejected", c.boss_event_id, c.reason, c.field, keep(c))
            continue
        if c.boss_event_id in first_in_batch:
            repeats.append(c)
            continue
        first_in_batch[c.boss_event_id] = c
        checked.append(c)

    event_ids = {c.boss_event_id: event_id_for(source, c.boss_event_id) for c in checked}
    # Every record's event is written before the claim, which takes the database's one writer (SQLite) until
    # the commit: a feed's records are nearly all new, and other pushes wait on that writer.
    prepared = [billing_event(source, c.event_type, c.data, event_ids[c.boss_event_id], c.occurred_at) for c in checked]
    fresh = await _claim(session, source, checked, event_ids)
    known = await _digests(session, source, [c.boss_event_id for c in checked if c.boss_event_id not in fresh])
    events = []
    for c, event in zip(checked, prepared, strict=True):
        if c.boss_event_id in fresh:
            outcomes[c.index] = Outcome(c.index, "accepted", c.boss_event_id)
            events.append(event)
        else:
            outcomes[c.index] = _repeat(c, known.get(c.boss_event_id, ""), records[c.index], keep)
    for c in repeats:
        # A repeat within the batch is what its first copy turned out to be: a duplicate of an accepted
        # record, or (when the first copy conflicts with what was accepted before) a conflict too.
        first = first_in_batch[c.boss_event_id]
        first_digest = first.digest if outcomes[first.index].status != "rejected" else ""
        outcomes[c.index] = _repeat(c, first_digest, records[c.index], keep)
    await stage_prepared(session, contracts, events)
    await session.flush()
    result.outcomes = [outcomes[i] for i in range(len(records))]
    tally = Counter((_kind(kinds.get(o.index)), o.status) for o in result.outcomes)
    for (kind, status), count in tally.items():
        RECORDS.labels(kind, status, channel).inc(count)
    BATCH_SECONDS.labels(channel).observe(time.perf_counter() - started)
    return result


def _kind(event_type: str | None) -> str:
    """`subscription.activated` from `billing.subscription.activated.v1`; `unknown` when it could not be read."""
    return event_type.removeprefix("billing.").removesuffix(".v1") if event_type else "unknown"


def _repeat(c: Checked, first_digest: str, value: Any, keep: Callable[[Rejected], str | None]) -> Outcome:
    """A BOSS id seen before: a true duplicate if the content matches, otherwise a conflict to look at."""
    if first_digest == c.digest:
        return Outcome(c.index, "duplicate", c.boss_event_id)
    reason = "event_id was already used for a record with different content"
    rejected = Rejected(
        c.index, reason, f"records[{c.index}].event_id", json_text(value), c.boss_event_id, c.event_type
    )
    return Outcome(c.index, "rejected", c.boss_event_id, reason, rejected.field, keep(rejected))


async def _claim(session: AsyncSession, source: str, checked: list[Checked], event_ids: dict[str, str]) -> set[str]:
    """Insert the log rows; the ones that went in are ours, the rest were accepted before (or concurrently)."""
    if not checked:
        return set()
    claimed = await insert_many(
        session,
        IngestedRecord.__table__,
        ("source", "boss_event_id", "event_id", "event_type", "customer_id", "payload_sha256"),
        [
            (source, c.boss_event_id, event_ids[c.boss_event_id], c.event_type, c.data["customer_id"], c.digest)
            for c in checked
        ],
        same={"received_at": utcnow()},
        ignore_duplicates=True,
        returning="boss_event_id",
    )
    return set(claimed)


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
    return quarantine(session, Origin(source), Rejected(-1, reason, "body", bytes_text(body)))
