"""The BOSS push route (POST /boss/v1/events). Thin: read, call the domain, shape the answer."""

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from crm_billing_adapter.domain import ingest, reading
from crm_billing_adapter.schemas.push import BatchReceipt, BossBatch, RecordOutcome
from crm_billing_adapter.settings import Settings
from crm_kit.errors import InvalidInput, MalformedBody, PayloadTooLarge, problem
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


def _receipt(result: reading.BatchResult) -> BatchReceipt:
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
    reading.media_type(content_type)  # 415 before reading anything
    body = await request.body()
    try:
        body = reading.decompress(body, content_encoding, settings.max_decompressed_bytes)
        records = reading.parse_records(body, content_type)
    except (MalformedBody, InvalidInput) as exc:
        # Nothing the BOSS handed over is dropped: a body that cannot be read as a batch is kept whole
        # (inflated, when it was gzip that could be inflated).
        qid = ingest.quarantine_unparsable_body(session, source, body, exc.detail)
        return problem(
            exc.status, exc.slug, exc.title, exc.detail, request.url.path, field=exc.field, quarantine_id=qid
        )
    if len(records) > settings.max_batch_records:
        raise PayloadTooLarge(
            f"Batch of {len(records)} records exceeds the limit of {settings.max_batch_records}; split it",
            field="records",
        )
    result = await ingest.ingest(session, rt.contracts, ingest.Origin(source), records)
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
