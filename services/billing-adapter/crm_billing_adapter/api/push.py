"""The BOSS push route (POST /boss/v1/events). Thin: read, call the domain, shape the answer."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Header, Request, Response

from crm_billing_adapter.domain import admission, ingest, reading
from crm_billing_adapter.schemas.push import BatchReceipt, BossBatch
from crm_billing_adapter.settings import Settings
from crm_kit.errors import InvalidInput, MalformedBody, PayloadTooLarge, problem
from crm_kit.service import DbSession, RuntimeDep


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the service's own lifespan, once the runtime (and its settings) is there."""
    admission.warn_of_dev_secret(app.state.runtime.settings)
    yield


router = APIRouter(prefix="/boss/v1", tags=["BOSS feed"], lifespan=_lifespan)

PUSH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BossBatch.model_json_schema(ref_template="#/components/schemas/{model}")},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one BOSS record per line"}},
        },
    }
}


def _receipt(result: reading.BatchResult) -> dict[str, Any]:
    """A `BatchReceipt` as plain data: thousands of outcomes a push, each already exactly a `RecordOutcome`."""
    return {
        "accepted": result.count("accepted"),
        "duplicates": result.count("duplicate"),
        "rejected": result.count("rejected"),
        "results": [vars(o) for o in result.outcomes],
    }


@router.post(
    "/events",
    summary="Push a batch of BOSS events",
    description='Up to 5,000 records as JSON (`{"records": [...]}`) or NDJSON, optionally gzip. Each record is '
    "accepted, a duplicate of one accepted before, or rejected and quarantined. 202 when none was rejected; "
    "422 problem+json listing every outcome when some were (the others are still accepted).\n\n"
    "Every push is signed (接口签名): `X-Boss-Signature: sha256=<hex>`, the HMAC-SHA256 with the source's secret "
    'of `"<X-Boss-Timestamp>." + body`, the body exactly as sent (the gzip bytes when gzip). A push without a '
    "valid signature from a known source within the replay window is refused whole with 401 and not kept. When "
    "too many events wait for the broker, a push is refused whole with 503 and `Retry-After`.",
    status_code=202,
    response_model=BatchReceipt,
    responses={400: {}, 401: {}, 413: {}, 415: {}, 422: {}, 503: {}},
    openapi_extra=PUSH_BODY,
)
async def push_events(
    request: Request,
    session: DbSession,
    rt: RuntimeDep,
    content_type: Annotated[str, Header()] = "application/json",
    content_encoding: Annotated[str | None, Header()] = None,
    x_boss_source: Annotated[str | None, Header(description="The BOSS source (计费源) the push comes from")] = None,
    x_boss_timestamp: Annotated[
        str | None, Header(description="When the push was signed, Unix seconds; within ±5 minutes by default")
    ] = None,
    x_boss_signature: Annotated[
        str | None, Header(description='"sha256=" + hex HMAC-SHA256 of "<timestamp>." + the body as sent')
    ] = None,
) -> Response:
    settings: Settings = rt.settings  # type: ignore[assignment]
    body = await request.body()
    # Who sent it, before a byte of it is inflated or parsed.
    source = admission.authenticate(settings, x_boss_source, x_boss_timestamp, x_boss_signature, body)
    reading.media_type(content_type)
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
    await admission.ensure_room(session, settings, len(records))
    result = await ingest.ingest(session, rt.contracts, ingest.Origin(source), records)
    # Committed before the receipt of thousands of outcomes is written: the next push need not wait for it.
    await session.commit()
    receipt = _receipt(result)
    if receipt["rejected"]:
        first = next(o for o in result.outcomes if o.status == "rejected")
        return problem(
            422,
            "records-rejected",
            "Some records were rejected",
            f"{receipt['rejected']} of {len(records)} records rejected and quarantined; first: {first.reason}",
            request.url.path,
            field=first.field,
            **receipt,
        )
    return Response(orjson.dumps(receipt), status_code=202, media_type="application/json")
