"""Privacy (个人信息保护, /api/v1/privacy): who saw whose personal data, the export of everything held on a customer,
erasure by pseudonymisation, and the merge of duplicate customers. All of it for supervisors and administrators
(the data-protection officer's delegates)."""

from __future__ import annotations

from typing import Annotated, Any

from asgi_correlation_id import correlation_id
from fastapi import APIRouter, Header, Path, Query, Request
from pydantic import AwareDatetime
from sqlalchemy import select

from crm_customer import events
from crm_customer.api.access import PrivacyOfficer
from crm_customer.domain import privacy
from crm_customer.models import Customer, CustomerErasure, PiiAccess
from crm_customer.schemas.privacy import ErasureIn, ErasureOut, ExportOut, MergeIn, MergeOut, PiiAccessOut
from crm_kit.db import utcnow
from crm_kit.errors import NotFound
from crm_kit.outbox import stage
from crm_kit.presentation import JSONResponse, shanghai
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/api/v1/privacy", tags=["Privacy"])
PROBLEMS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}
CustomerId = Annotated[str, Path(max_length=64)]


def access_out(row: PiiAccess) -> PiiAccessOut:
    return PiiAccessOut(
        id=row.seq,
        at=shanghai(row.at) or "",
        actor=row.actor,
        roles=row.roles.split(),
        customer_id=row.customer_id,
        fields=row.fields.split(","),
        reason=row.reason,
        action=row.action,
        request_id=row.request_id,
    )


def erasure_out(record: CustomerErasure, customer: Customer) -> ErasureOut:
    return ErasureOut(
        customer_id=record.customer_id,
        erased_at=shanghai(record.erased_at) or "",
        requested_by=record.requested_by,
        reason=record.reason,  # type: ignore[arg-type]
        name=customer.name,
    )


async def _customer(session: DbSession, customer_id: str, field: str = "customer_id") -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field=field)
    return customer


async def _locked(session: DbSession, *customer_ids: str) -> dict[str, Customer]:
    """The customers, locked (PostgreSQL) in id order so two requests on the same pair never deadlock."""
    found = await session.scalars(
        select(Customer).where(Customer.id.in_(customer_ids)).order_by(Customer.id).with_for_update()
    )
    return {c.id: c for c in found}


@router.get(
    "/audit",
    summary="Unmasked reads of personal data (敏感信息查看记录), newest first",
    response_model=list[PiiAccessOut],
    responses=PROBLEMS,
)
async def get_audit(
    _: PrivacyOfficer,
    session: DbSession,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[AwareDatetime | None, Query(description="From this moment on (RFC 3339 with an offset)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await privacy.audit_log(session, privacy.audit_where(customer_id, actor, since), offset, limit)
    items = [access_out(row).model_dump(mode="json") for row in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@router.get(
    "/customers/{customer_id}/export",
    summary="Everything held on the customer (个人信息副本), for their access request; audited",
    response_model=ExportOut,
    responses=PROBLEMS,
)
async def export_customer(
    customer_id: CustomerId,
    request: Request,
    principal: PrivacyOfficer,
    session: DbSession,
    reason: Annotated[
        str, Header(alias="X-Access-Reason", min_length=3, max_length=300, description="Why, e.g. the request number")
    ],
) -> JSONResponse:
    customer = await _customer(session, customer_id)
    session.add(
        PiiAccess(
            at=utcnow(),
            actor=principal.subject,
            roles=" ".join(sorted(principal.roles)),
            customer_id=customer_id,
            fields=privacy.EXPORT_FIELDS,
            reason=reason,
            action=f"{request.method} {request.url.path}",
            request_id=correlation_id.get(),
        )
    )
    await session.flush()
    return JSONResponse(await privacy.export(session, customer))


@router.post(
    "/customers/{customer_id}/erasure",
    summary="Erase the customer's personal data by pseudonymisation (删除权); repeat-safe",
    status_code=201,
    response_model=ErasureOut,
    responses={**PROBLEMS, 200: {"description": "Already erased: the first erasure", "model": ErasureOut}},
)
async def erase_customer(
    customer_id: CustomerId, body: ErasureIn, principal: PrivacyOfficer, session: DbSession, rt: RuntimeDep
) -> JSONResponse:
    customer = (await _locked(session, customer_id)).get(customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    erasure = await privacy.erase(session, customer, reason=body.reason, actor=principal.subject)
    if erasure.created:
        await stage(session, rt.contracts, [events.customer_erased(erasure.record)])
    return JSONResponse(
        erasure_out(erasure.record, customer).model_dump(mode="json"), status_code=201 if erasure.created else 200
    )


@router.post(
    "/customers/{customer_id}/merge",
    summary="Merge a duplicate customer into this one (客户合并)",
    response_model=MergeOut,
    responses=PROBLEMS,
)
async def merge_customers(
    customer_id: CustomerId, body: MergeIn, principal: PrivacyOfficer, session: DbSession, rt: RuntimeDep
) -> MergeOut:
    found = await _locked(session, customer_id, body.duplicate_id)
    if customer_id not in found:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    if body.duplicate_id not in found:
        raise NotFound(f"No customer {body.duplicate_id}", field="duplicate_id")
    merge = await privacy.merge(
        session, found[customer_id], found[body.duplicate_id], reason=body.reason, actor=principal.subject
    )
    record = merge.record
    moved_tiers = [events.tier_changed(record.survivor_id, change, record.merged_at) for change in merge.tier_changes]
    await stage(session, rt.contracts, [events.customers_merged(record), *moved_tiers])
    return MergeOut(
        survivor_id=record.survivor_id,
        merged_id=record.merged_id,
        merged_by=record.merged_by,
        merged_at=shanghai(record.merged_at) or "",
        reason=record.reason,
        moved=merge.moved,
    )
