"""Quarantine routes (隔离区): rejected records, their reasons and raw text."""

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import func, select

from crm_billing_adapter.models import QuarantinedRecord
from crm_billing_adapter.schemas.quarantine import QuarantineEntry
from crm_kit.errors import NotFound
from crm_kit.service import DbSession

router = APIRouter(prefix="/boss/v1", tags=["BOSS quarantine"])


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
