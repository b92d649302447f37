"""The satisfaction survey (满意度回访): a TMF621 extension sub-resource of a ticket, and the supervisors' report of
its averages per agent, queue or category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from crm_kit.presentation import SHANGHAI, JSONResponse
from crm_kit.service import DbSession, RuntimeDep
from crm_ticketing.api.access import TicketForUpdate, supervisor
from crm_ticketing.api.tickets import ONE, Now
from crm_ticketing.domain import csat
from crm_ticketing.schemas.csat import CsatReport
from crm_ticketing.schemas.trouble_ticket import Csat, CsatInput, Instant

SATISFACTION = f"{ONE}/satisfaction"
REPORT = "/api/v1/tickets/satisfaction"
router = APIRouter(responses={401: {}, 403: {}})


@router.post(
    SATISFACTION,
    tags=["TMF621 Trouble Ticket"],
    summary="Record the customer's satisfaction with a resolved ticket (满意度回访), once",
    status_code=201,
    response_model=Csat,
    responses={404: {}, 409: {}, 422: {}},
)
async def record_satisfaction(
    ticket: TicketForUpdate, body: CsatInput, session: DbSession, rt: RuntimeDep, now: Now
) -> JSONResponse:
    """The agent (or a supervisor) types in what the customer answered on the callback; shown in China Standard
    Time, as the ticket shows it."""
    await csat.record(session, rt.contracts, ticket, body, now=now)
    recorded_at = ticket.csat_at.astimezone(SHANGHAI) if ticket.csat_at else None
    answer = Csat(score=body.score, comment=ticket.csat_comment, recorded_at=recorded_at)
    return JSONResponse(answer.model_dump(mode="json", by_alias=True), status_code=201)


@router.get(
    REPORT,
    tags=["Ticket reports"],
    summary="Satisfaction per agent, queue or category: count, average and share satisfied",
    response_model=CsatReport,
    dependencies=[Depends(supervisor)],
    responses={422: {}},
)
async def satisfaction_report(
    session: DbSession,
    by: Annotated[csat.GroupBy, Query(description="What to group by; tickets with none are the null group")],
    since: Annotated[
        Instant | None, Query(alias="from", description="Recorded at or after (RFC 3339 with offset)")
    ] = None,
    until: Annotated[Instant | None, Query(alias="to", description="Recorded before (RFC 3339 with offset)")] = None,
) -> JSONResponse:
    groups = await csat.report(session, by, since=since, until=until)
    answer = CsatReport.model_validate(
        {
            "by": by,
            "from": since,
            "to": until,
            "groups": [
                {"group": g.group, "count": g.count, "average": str(g.average), "satisfied": str(g.satisfied)}
                for g in groups
            ],
        }
    )
    return JSONResponse(answer.model_dump(mode="json", by_alias=True))
