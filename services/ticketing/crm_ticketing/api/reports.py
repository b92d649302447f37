"""The supervisors' service-quality reports: the backlog now, and how a window's tickets were resolved."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from crm_kit.errors import InvalidInput
from crm_kit.presentation import SHANGHAI, JSONResponse
from crm_kit.service import DbSession
from crm_ticketing.api.access import supervisor
from crm_ticketing.api.tickets import Now
from crm_ticketing.domain import reports
from crm_ticketing.schemas.reports import BacklogReport, ServiceQualityReport
from crm_ticketing.schemas.trouble_ticket import Instant

REPORTS = "/api/v1/tickets/reports"
DEFAULT_WINDOW = timedelta(days=7)
router = APIRouter(tags=["Ticket reports"], dependencies=[Depends(supervisor)], responses={401: {}, 403: {}})


def _ratio(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


@router.get(
    f"{REPORTS}/backlog",
    summary="Open tickets by priority and by age (未结工单/积压时长)",
    response_model=BacklogReport,
)
async def backlog(session: DbSession, now: Now) -> JSONResponse:
    open_now = await reports.backlog(session, now)
    oldest = open_now.oldest_opened_at
    answer = BacklogReport.model_validate(
        {
            "asOf": now.astimezone(SHANGHAI),
            "total": open_now.total,
            "byPriority": open_now.by_priority,
            "byAge": open_now.by_age,
            "oldestOpenedAt": oldest.astimezone(SHANGHAI) if oldest else None,
        }
    )
    return JSONResponse(answer.model_dump(mode="json", by_alias=True))


@router.get(
    f"{REPORTS}/service-quality",
    summary="SLA attainment, first-contact resolution and repeat complaints over a window",
    response_model=ServiceQualityReport,
    responses={422: {}},
)
async def service_quality(
    session: DbSession,
    now: Now,
    since: Annotated[
        Instant | None, Query(alias="from", description="Inclusive (RFC 3339 with offset); default: 7 days before to")
    ] = None,
    until: Annotated[Instant | None, Query(alias="to", description="Exclusive; default: now")] = None,
) -> JSONResponse:
    until = until or now
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise InvalidInput(f"from ({since.isoformat()}) must be before to ({until.isoformat()})", field="from")
    quality = await reports.service_quality(session, since, until)
    answer = ServiceQualityReport.model_validate(
        {
            "from": since.astimezone(SHANGHAI),
            "to": until.astimezone(SHANGHAI),
            "resolved": quality.resolved,
            "firstResponseAttainment": _ratio(quality.first_response_attainment),
            "resolutionAttainment": _ratio(quality.resolution_attainment),
            "firstContactResolution": _ratio(quality.first_contact_resolution),
            "complaints": quality.complaints,
            "repeatComplaints": quality.repeat_complaints,
            "repeatComplaintRate": _ratio(quality.repeat_complaint_rate),
        }
    )
    return JSONResponse(answer.model_dump(mode="json", by_alias=True))
