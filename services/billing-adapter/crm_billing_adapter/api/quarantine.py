"""Quarantine routes (隔离区): rejected records, their reasons and raw text; fix, replay, discard.

Billing operations staff (计费运维) and administrators only: the raw text holds personal data.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime

from crm_billing_adapter.api.access import BillingOps, billing_ops
from crm_billing_adapter.domain import quarantine, reading
from crm_billing_adapter.models import QuarantinedRecord
from crm_billing_adapter.schemas.push import BossRecord
from crm_billing_adapter.schemas.quarantine import (
    DiscardRequest,
    EventTypeCount,
    FieldCount,
    QuarantineEntry,
    QuarantineSummary,
    ReplayAnswer,
    ReplayOutcome,
    ReplayReceipt,
    ReplayRequest,
)
from crm_kit.errors import UnsupportedMediaType, problem
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(
    prefix="/boss/v1",
    tags=["BOSS quarantine"],
    dependencies=[Depends(billing_ops)],
    responses={401: {}, 403: {}},
)
QUARANTINE = "/quarantine"
ONE = "/quarantine/{quarantine_id}"

FIX_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BossRecord.model_json_schema(ref_template="#/components/schemas/{model}")}
        },
    }
}


def _entry(row: QuarantinedRecord) -> QuarantineEntry:
    return QuarantineEntry.model_validate(row)


@router.get(QUARANTINE, summary="Rejected records, newest first", response_model=list[QuarantineEntry])
async def list_quarantine(
    session: DbSession,
    response: Response,
    status: Annotated[str | None, Query(pattern="^(open|replayed|discarded)$")] = None,
    event_id: Annotated[str | None, Query(max_length=64, description="BOSS event id")] = None,
    event_type: Annotated[
        str | None, Query(max_length=128, description="`subscription.activated` or `billing.subscription.activated.v1`")
    ] = None,
    source: Annotated[str | None, Query(max_length=64, description="The BOSS source that sent it")] = None,
    job_id: Annotated[str | None, Query(max_length=36, description="The file import it came from")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="Reason contains (any case)")] = None,
    received_from: Annotated[AwareDatetime | None, Query(description="Received at or after (RFC 3339)")] = None,
    received_to: Annotated[AwareDatetime | None, Query(description="Received before (RFC 3339)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[QuarantineEntry]:
    where = quarantine.Filter(status, event_id, event_type, source, job_id, q, received_from, received_to)
    total, rows = await quarantine.page(session, where, offset, limit)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(rows))
    return [_entry(r) for r in rows]


@router.get(
    f"{QUARANTINE}/summary",
    summary="What is going wrong: open records by the field at fault and by event type",
    response_model=QuarantineSummary,
)
async def quarantine_summary(
    session: DbSession,
    source: Annotated[str | None, Query(max_length=64)] = None,
    job_id: Annotated[str | None, Query(max_length=36)] = None,
) -> QuarantineSummary:
    s = await quarantine.summarise(session, source, job_id)
    return QuarantineSummary(
        open=s.open,
        oldest_open_at=s.oldest_open_at,
        by_field=[FieldCount(field=c.field, count=c.count, example=c.example) for c in s.by_field],
        by_event_type=[EventTypeCount(event_type=t, count=n) for t, n in s.by_event_type],
    )


@router.get(ONE, summary="One rejected record", response_model=QuarantineEntry, responses={404: {}})
async def get_quarantine(quarantine_id: str, session: DbSession) -> QuarantineEntry:
    return _entry(await quarantine.load(session, quarantine_id))


@router.put(
    f"{ONE}/fix",
    summary="Save a corrected record, checked against its contract now",
    description="The body is the corrected BOSS record `{event_id, event_type, data}`. It is stored only when it "
    "passes its contract (422 naming the field otherwise); the entry stays open until it is replayed.",
    response_model=QuarantineEntry,
    responses={400: {}, 404: {}, 409: {}, 415: {}, 422: {}},
    openapi_extra=FIX_BODY,
)
async def fix_quarantined(
    quarantine_id: str,
    request: Request,
    session: DbSession,
    rt: RuntimeDep,
    content_type: Annotated[str, Header()] = "application/json",
) -> QuarantineEntry:
    if reading.media_type(content_type) != "json":
        raise UnsupportedMediaType("Send the corrected record as application/json", field="Content-Type")
    row = await quarantine.load(session, quarantine_id, lock=True)
    quarantine.fix(row, rt.contracts, await request.body())
    return _entry(row)


@router.post(
    f"{ONE}/replay",
    summary="Replay one record, as fixed or as received",
    description="Accepted: published and resolved. A duplicate of a record accepted before: resolved, nothing "
    "published again. Still rejected: 422 with the reason, and the entry stays open with that reason.",
    response_model=ReplayAnswer,
    responses={404: {}, 409: {}, 422: {}},
)
async def replay_quarantined(
    quarantine_id: str, request: Request, session: DbSession, rt: RuntimeDep, who: BillingOps
) -> ReplayAnswer | JSONResponse:
    row = await quarantine.load(session, quarantine_id, lock=True)
    quarantine.check_replayable(row)
    [result] = await quarantine.replay(session, rt.contracts, [row], who.subject)
    entry = _entry(row)
    if result.status == "rejected":
        # Not raised: the new reason is kept (the request's transaction commits what a problem answer says).
        return problem(
            422,
            "replay-rejected",
            "The record is still rejected",
            result.reason or row.reason,
            request.url.path,
            field=result.field,
            entry=entry.model_dump(mode="json"),
        )
    detail = (
        f"The BOSS record was {quarantine.ALREADY_ACCEPTED}"
        if result.status == "duplicate"
        else f"Accepted and published as event {row.replayed_event_id}"
    )
    return ReplayAnswer(outcome=result.status, detail=detail, entry=entry)


@router.post(
    f"{QUARANTINE}/replay",
    summary="Replay many records: by ids (up to 1,000) or by event type and/or file import",
    description="Each open record is replayed as in the single replay; records not open, unknown ids and "
    "records that are not JSON (and have no fix) are skipped. A filter takes the oldest 1,000 open records; "
    "`remaining` says how many more match.",
    response_model=ReplayReceipt,
    responses={422: {}},
)
async def replay_many(body: ReplayRequest, session: DbSession, rt: RuntimeDep, who: BillingOps) -> ReplayReceipt:
    bulk = await quarantine.replay_many(
        session, rt.contracts, who.subject, ids=body.ids, event_type=body.event_type, job_id=body.job_id
    )
    results = [
        ReplayOutcome(
            id=r.id,
            status=r.status,
            event_id=r.row.boss_event_id if r.row else None,
            replayed_event_id=r.row.replayed_event_id if r.row else None,
            reason=r.reason,
            field=r.field,
        )
        for r in bulk.results
    ]
    count = [r.status for r in results].count
    return ReplayReceipt(
        accepted=count("accepted"),
        duplicates=count("duplicate"),
        rejected=count("rejected"),
        skipped=count("skipped"),
        remaining=bulk.remaining,
        results=results,
    )


@router.post(
    f"{ONE}/discard",
    summary="Give a record up, saying why",
    response_model=QuarantineEntry,
    responses={404: {}, 409: {}, 422: {}},
)
async def discard_quarantined(
    quarantine_id: str, body: DiscardRequest, session: DbSession, who: BillingOps
) -> QuarantineEntry:
    row = await quarantine.load(session, quarantine_id, lock=True)
    quarantine.discard(row, who.subject, body.note)
    return _entry(row)
