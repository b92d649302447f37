"""File import routes (话单文件导入): upload a BOSS batch file, follow its job, cancel it, download what was rejected.

The files hold raw BOSS records (phone numbers among them): every route needs billing operations staff.
"""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from crm_billing_adapter.api.access import BillingOps
from crm_billing_adapter.domain import imports
from crm_billing_adapter.models import ImportJob
from crm_billing_adapter.schemas.imports import FileFormat, ImportJobView, ImportStatus
from crm_billing_adapter.settings import Settings
from crm_kit.presentation import shanghai
from crm_kit.service import DbSession, RuntimeDep

IMPORTS = "/boss/v1/imports"
router = APIRouter(prefix=IMPORTS, tags=["BOSS file imports"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("text/csv", "application/x-ndjson", "application/octet-stream")
        },
    }
}
REJECTED_MEDIA = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def job_view(job: ImportJob) -> ImportJobView:
    href = f"{IMPORTS}/{job.id}"
    return ImportJobView(
        id=job.id,
        href=href,
        source=job.source,
        file_name=job.file_name,
        format=job.file_format,  # type: ignore[arg-type]
        gzip=imports.is_gzip(job),
        size_bytes=job.size_bytes,
        sha256=job.sha256,
        status=job.status,  # type: ignore[arg-type]
        lines_read=job.lines_read,
        accepted=job.accepted,
        duplicates=job.duplicates,
        rejected=job.rejected,
        progress=imports.progress(job),
        error=job.error,
        created_by=job.created_by,
        created_at=shanghai(job.created_at),  # type: ignore[arg-type]
        started_at=shanghai(job.started_at),
        finished_at=shanghai(job.finished_at),
        updated_at=shanghai(job.updated_at),  # type: ignore[arg-type]
        rejected_href=f"{href}/rejected",
    )


@router.post(
    "",
    summary="Upload a BOSS batch file to import",
    description="The file is the raw body (CSV of usage records with a header row, or NDJSON of BOSS push records; "
    "gzip by `Content-Encoding: gzip` or a `.gz` file name), streamed to disk and read by a background worker in "
    "chunks. 202 with the job; follow it at `Location`. The same file from the same source again is 409 naming "
    "its job, unless that job failed or was cancelled.",
    status_code=202,
    response_model=ImportJobView,
    responses={400: {}, 401: {}, 403: {}, 409: {}, 413: {}, 415: {}, 422: {}},
    openapi_extra=UPLOAD_BODY,
)
async def upload_file(
    request: Request,
    response: Response,
    session: DbSession,
    rt: RuntimeDep,
    caller: BillingOps,
    source: Annotated[str, Query(pattern=r"^[a-z0-9-]{1,64}$", description="The BOSS source (计费源)")],
    file_format: Annotated[FileFormat | None, Query(alias="format", description="From the file name if absent")] = None,
    file_name: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    content_type: Annotated[str | None, Header()] = None,
    content_encoding: Annotated[str | None, Header()] = None,
) -> ImportJobView:
    settings: Settings = rt.settings  # type: ignore[assignment]
    upload = imports.describe_upload(
        source=source,
        sources=settings.source_secrets.keys(),
        file_format=file_format,
        file_name=file_name,
        content_type=content_type,
        content_encoding=content_encoding,
    )
    job = await imports.accept_upload(
        session,
        request.stream(),
        folder=settings.import_dir,
        job_id=str(uuid.uuid4()),
        upload=upload,
        created_by=caller.subject,
    )
    response.headers["Location"] = f"{IMPORTS}/{job.id}"
    return job_view(job)


@router.get("", summary="Import jobs, newest first", response_model=list[ImportJobView], responses={401: {}, 403: {}})
async def list_imports(
    session: DbSession,
    response: Response,
    _: BillingOps,
    status: ImportStatus | None = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ImportJobView]:
    total, jobs = await imports.list_jobs(session, status=status, source=source, offset=offset, limit=limit)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(jobs))
    return [job_view(j) for j in jobs]


@router.get("/{job_id}", summary="One import job", response_model=ImportJobView, responses={401: {}, 403: {}, 404: {}})
async def get_import(job_id: str, session: DbSession, _: BillingOps) -> ImportJobView:
    return job_view(await imports.load_job(session, job_id))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued or running import",
    description="A running import stops at its next chunk; what it committed before stays.",
    response_model=ImportJobView,
    responses={401: {}, 403: {}, 404: {}, 409: {}},
)
async def cancel_import(job_id: str, session: DbSession, _: BillingOps) -> ImportJobView:
    job = await imports.load_job(session, job_id)
    return job_view(await imports.cancel(session, job))


@router.get(
    "/{job_id}/rejected",
    summary="An import's rejected lines",
    description="From the quarantine, by line: NDJSON (`{line, reason, field, raw, quarantine_id}` a line) or CSV, "
    "chosen by `format` or `Accept: text/csv`; streamed.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}, 401: {}, 403: {}, 404: {}},
)
async def download_rejected(
    job_id: str,
    session: DbSession,
    rt: RuntimeDep,
    _: BillingOps,
    file_format: Annotated[FileFormat | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    job = await imports.load_job(session, job_id)
    fmt = file_format or ("csv" if "text/csv" in (accept or "") else "ndjson")
    return StreamingResponse(
        imports.export_rejected(rt.db, job.id, fmt),
        media_type=REJECTED_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="import-{job.id}-rejected.{fmt}"'},
    )
