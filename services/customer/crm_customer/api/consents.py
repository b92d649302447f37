"""A customer's consents and do-not-disturb (/api/v1/customers/{id}/consents, /do-not-disturb)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from crm_customer import events
from crm_customer.api.access import CustomerForUpdate, ExistingCustomer, Writer
from crm_customer.domain import consents
from crm_customer.models import (
    ConsentHistory,
    DoNotDisturb,
)
from crm_customer.schemas.consents import (
    Channel,
    ConsentHistoryOut,
    ConsentIn,
    ConsentOut,
    CustomerConsentsOut,
    DoNotDisturbIn,
    DoNotDisturbOut,
    Purpose,
)
from crm_kit.db import utcnow
from crm_kit.outbox import stage
from crm_kit.presentation import JSONResponse, shanghai
from crm_kit.service import DbSession, RuntimeDep

CONSENTS_BASE = "/api/v1/customers/{customer_id}"
consent_router = APIRouter(prefix=CONSENTS_BASE, tags=["Consents"])
PROBLEMS: dict[int | str, dict[str, Any]] = {404: {}, 422: {}}


def consent_out(view: consents.ConsentView) -> ConsentOut:
    record = view.record
    return ConsentOut(
        channel=view.channel,  # type: ignore[arg-type]
        purpose=view.purpose,  # type: ignore[arg-type]
        granted=view.granted,
        recorded=record is not None,
        contactable=view.contactable,
        source=record.source if record else None,  # type: ignore[arg-type]
        recorded_at=shanghai(record.recorded_at) if record else None,
        updated_at=shanghai(record.updated_at) if record else None,
    )


def dnd_out(dnd: DoNotDisturb | None, active: bool) -> DoNotDisturbOut:
    return DoNotDisturbOut(
        enabled=dnd.enabled if dnd else False,
        active=active,
        until=shanghai(dnd.until) if dnd else None,
        source=dnd.source if dnd else None,  # type: ignore[arg-type]
        recorded_at=shanghai(dnd.recorded_at) if dnd else None,
        updated_at=shanghai(dnd.updated_at) if dnd else None,
    )


def history_out(entry: ConsentHistory) -> ConsentHistoryOut:
    return ConsentHistoryOut(
        id=entry.seq,
        kind=entry.kind,  # type: ignore[arg-type]
        channel=entry.channel,  # type: ignore[arg-type]
        purpose=entry.purpose,  # type: ignore[arg-type]
        granted=entry.granted,
        enabled=entry.enabled,
        until=shanghai(entry.until),
        source=entry.source,  # type: ignore[arg-type]
        recorded_at=shanghai(entry.recorded_at) or "",
        changed_by=entry.changed_by,
        changed_at=shanghai(entry.changed_at) or "",
    )


@consent_router.get("/consents", summary="A customer's consents and do-not-disturb", responses=PROBLEMS)
async def get_consents(customer_id: ExistingCustomer, session: DbSession) -> CustomerConsentsOut:
    state = await consents.load_consents(session, customer_id)
    return CustomerConsentsOut(
        customer_id=customer_id,
        href=CONSENTS_BASE.format(customer_id=customer_id) + "/consents",
        consents=[consent_out(v) for v in state.items],
        do_not_disturb=dnd_out(state.dnd, state.dnd_on),
    )


@consent_router.get(
    "/consents/history", summary="Every change of the customer's consents, newest first", responses=PROBLEMS
)
async def get_consent_history(
    customer_id: ExistingCustomer,
    session: DbSession,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await consents.consent_history(session, customer_id, offset, limit)
    items = [history_out(e).model_dump(mode="json") for e in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@consent_router.put(
    "/consents/{channel}/{purpose}",
    summary="Record the customer's consent on a channel for a purpose",
    responses={**PROBLEMS, 409: {"description": "recorded_at is older than the consent on record"}},
)
async def put_consent(
    customer_id: CustomerForUpdate,
    channel: Channel,
    purpose: Purpose,
    body: ConsentIn,
    session: DbSession,
    rt: RuntimeDep,
    principal: Writer,
) -> ConsentOut:
    change = await consents.record_consent(
        session,
        customer_id,
        channel,
        purpose,
        granted=body.granted,
        source=body.source,
        recorded_at=body.recorded_at,
        actor=principal.subject,
    )
    state = await consents.load_consents(session, customer_id)
    if change.changed:
        await stage(session, rt.contracts, [events.consent_changed(change.consent, state.dnd, change.event_id)])
    return consent_out(next(v for v in state.items if (v.channel, v.purpose) == (channel, purpose)))


@consent_router.put(
    "/do-not-disturb",
    summary="Switch the customer's do-not-disturb (免打扰) on or off",
    responses={**PROBLEMS, 409: {"description": "recorded_at is older than the setting on record"}},
)
async def put_do_not_disturb(
    customer_id: CustomerForUpdate,
    body: DoNotDisturbIn,
    session: DbSession,
    rt: RuntimeDep,
    principal: Writer,
) -> DoNotDisturbOut:
    change = await consents.record_dnd(
        session,
        customer_id,
        enabled=body.enabled,
        until=body.until,
        source=body.source,
        recorded_at=body.recorded_at,
        actor=principal.subject,
    )
    if change.changed:
        await stage(session, rt.contracts, [events.dnd_changed(change.dnd, change.event_id)])
    return dnd_out(change.dnd, consents.dnd_active(change.dnd.enabled, change.dnd.until, utcnow()))
