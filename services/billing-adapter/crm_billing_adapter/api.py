"""BOSS push and quarantine routes. Thin: parse, call the domain, shape the answer."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from crm_billing_adapter import domain
from crm_billing_adapter.models import QuarantinedRecord
from crm_billing_adapter.schemas import BatchReceipt, BossBatch, QuarantineEntry, RecordOutcome
from crm_billing_adapter.settings import Settings
from crm_kit.errors import InvalidInput, MalformedBody, NotFound, PayloadTooLarge, problem
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/boss/v1", tags=["BOSS feed"])

PUSH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BossBatch.model_json_schema(ref_template="#/components/schemas/{model}")},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one BOSS record per line"}},
        },
    }
}


def _receipt(result: domain.BatchResult) -> BatchReceipt:
    return BatchReceipt(
        accepted=result.count("accepted"),
        duplicates=result.count("duplicate"),
        rejected=result.count("rejected"),
        results=[RecordOutcome(**vars(o)) for o in result.outcomes],
    )


@router.post(
    "/events",
    summary="Push a batch of BOSS events",
    description='Up to 5,000 records as JSON (`{"records": [...]}`) or NDJSON, optionally gzip. Each record is '
    "accepted, a duplicate of one accepted before, or rejected and quarantined. 202 when none was rejected; "
    "422 problem+json listing every outcome when some were (the others are still accepted).",
    status_code=202,
    response_model=BatchReceipt,
    responses={400: {}, 413: {}, 415: {}, 422: {}},
    openapi_extra=PUSH_BODY,
)
async def push_events(
    request: Request,
    session: DbSession,
    rt: RuntimeDep,
    content_type: Annotated[str, Header()] = "application/json",
    content_encoding: Annotated[str | None, Header()] = None,
    x_boss_source: Annotated[str | None, Header(pattern=r"^[a-z0-9-]{1,64}$")] = None,
) -> JSONResponse:
    settings: Settings = rt.settings  # type: ignore[assignment]
    source = x_boss_source or settings.source_name
    domain.media_type(content_type)  # 415 before reading anything
    body = await request.body()
    try:
        body = domain.decompress(body, content_encoding, settings.max_decompressed_bytes)
        records = domain.parse_records(body, content_type)
    except (MalformedBody, InvalidInput) as exc:
        # Nothing the BOSS handed over is dropped: a body that cannot be read as a batch is kept whole
        # (inflated, when it was gzip that could be inflated).
        qid = domain.quarantine_unparsable_body(session, source, body, exc.detail)
        return problem(
            exc.status, exc.slug, exc.title, exc.detail, request.url.path, field=exc.field, quarantine_id=qid
        )
    if len(records) > settings.max_batch_records:
        raise PayloadTooLarge(
            f"Batch of {len(records)} records exceeds the limit of {settings.max_batch_records}; split it",
            field="records",
        )
    result = await domain.ingest(session, rt.contracts, source, records)
    receipt = _receipt(result)
    if receipt.rejected:
        first = next(o for o in receipt.results if o.status == "rejected")
        return problem(
            422,
            "records-rejected",
            "Some records were rejected",
            f"{receipt.rejected} of {len(records)} records rejected and quarantined; first: {first.reason}",
            request.url.path,
            field=first.field,
            **receipt.model_dump(mode="json"),
        )
    return JSONResponse(receipt.model_dump(mode="json"), status_code=202)


@router.get("/quarantine", summary="Rejected records, newest first", response_model=list[QuarantineEntry])
async def list_quarantine(
    session: DbSession,
    response: Response,
    status: Annotated[str | None, Query(pattern="^(open|replayed|discarded)$")] = None,
    event_id: Annotated[str | None, Query(max_length=64, description="BOSS event id")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[QuarantineEntry]:
    query = select(QuarantinedRecord)
    if status:
        query = query.where(QuarantinedRecord.status == status)
    if event_id:
        query = query.where(QuarantinedRecord.boss_event_id == event_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(
        query.order_by(QuarantinedRecord.received_at.desc(), QuarantinedRecord.id).offset(offset).limit(limit)
    )
    items = [QuarantineEntry.model_validate(r) for r in rows]
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(items))
    return items


@router.get(
    "/quarantine/{quarantine_id}", summary="One rejected record", response_model=QuarantineEntry, responses={404: {}}
)
async def get_quarantine(quarantine_id: str, session: DbSession) -> QuarantineEntry:
    row = await session.get(QuarantinedRecord, quarantine_id)
    if row is None:
        raise NotFound(f"No quarantined record {quarantine_id}", field="quarantine_id")
    return QuarantineEntry.model_validate(row)
