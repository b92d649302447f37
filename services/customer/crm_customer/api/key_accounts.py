"""Key accounts (大客户, /api/v1/key-accounts): designate, reassign, revoke, the history, the portfolios.

Supervisors and administrators decide who is a key account and who looks after it; an account manager
(客户经理) reads their own portfolio, and sees nothing of the customers outside it (see `access`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy import select

from crm_customer import events
from crm_customer.api.access import ExistingCustomer
from crm_customer.api.billing import amount
from crm_customer.domain import key_accounts
from crm_customer.models import Customer, KeyAccountAssignment
from crm_customer.schemas.key_accounts import (
    AssignmentOut,
    KeyAccountIn,
    KeyAccountOut,
    PortfolioRowOut,
    ReassignIn,
    Tier,
)
from crm_kit.auth import Caller, Principal
from crm_kit.errors import Forbidden, InvalidInput, NotFound
from crm_kit.outbox import stage
from crm_kit.presentation import JSONResponse, shanghai
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/api/v1/key-accounts", tags=["Key accounts"])
PROBLEMS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}
DECIDERS = ("supervisor", "admin")


async def decider(principal: Caller) -> Principal:
    """Who is a key account, and whose, is decided by a supervisor or an administrator."""
    principal.require_role(*DECIDERS)
    return principal


Decider = Annotated[Principal, Depends(decider)]


async def locked_customer(customer_id: Annotated[str, Path(max_length=64)], session: DbSession, _: Decider) -> Customer:
    """The customer, locked (PostgreSQL) so that two decisions about one key account apply one after the other."""
    customer = await session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    return customer


LockedCustomer = Annotated[Customer, Depends(locked_customer)]


def key_account_out(customer: Customer) -> KeyAccountOut:
    return KeyAccountOut(
        customer_id=customer.id,
        key_account=customer.key_account,
        tier=customer.key_account_tier,  # type: ignore[arg-type]
        account_manager=customer.account_manager,
    )


def assignment_out(entry: KeyAccountAssignment) -> AssignmentOut:
    return AssignmentOut(
        id=entry.seq,
        customer_id=entry.customer_id,
        change=key_accounts.change_kind(entry),  # type: ignore[arg-type]
        from_manager=entry.from_manager,
        to_manager=entry.to_manager,
        tier=entry.tier,  # type: ignore[arg-type]
        reason=entry.reason,
        changed_by=entry.changed_by,
        changed_at=shanghai(entry.changed_at) or "",
    )


def portfolio_out(row: key_accounts.PortfolioRow) -> PortfolioRowOut:
    metrics = row.metrics
    return PortfolioRowOut(
        customer_id=row.customer.id,
        name=row.customer.name,
        tier=row.customer.key_account_tier,  # type: ignore[arg-type]
        account_manager=row.customer.account_manager,
        status=row.customer.status,
        active_lines=row.active_lines,
        arpu=amount(metrics.arpu_fen) if metrics else None,
        value_tier=metrics.value_tier if metrics else None,
    )


async def _publish(session: DbSession, rt: RuntimeDep, change: key_accounts.KeyAccountChange) -> None:
    if change.entry is not None:
        await stage(session, rt.contracts, [events.key_account_changed(change.customer, change.entry)])


@router.put("/{customer_id}", summary="Designate a key account, or change its tier or manager", responses=PROBLEMS)
async def put_key_account(
    customer: LockedCustomer, body: KeyAccountIn, session: DbSession, rt: RuntimeDep, principal: Decider
) -> KeyAccountOut:
    change = await key_accounts.designate(
        session, customer, tier=body.tier, manager=body.account_manager, reason=body.reason, actor=principal.subject
    )
    await _publish(session, rt, change)
    return key_account_out(change.customer)


@router.post("/{customer_id}/reassign", summary="Hand a key account to another manager", responses=PROBLEMS)
async def reassign_key_account(
    customer: LockedCustomer, body: ReassignIn, session: DbSession, rt: RuntimeDep, principal: Decider
) -> KeyAccountOut:
    change = await key_accounts.reassign(
        session, customer, to_manager=body.to_manager, reason=body.reason, actor=principal.subject
    )
    await _publish(session, rt, change)
    return key_account_out(change.customer)


@router.delete("/{customer_id}", summary="Revoke the key-account designation", responses=PROBLEMS)
async def revoke_key_account(
    customer: LockedCustomer,
    session: DbSession,
    rt: RuntimeDep,
    principal: Decider,
    reason: Annotated[str | None, Query(min_length=3, max_length=300)] = None,
) -> KeyAccountOut:
    change = await key_accounts.revoke(session, customer, reason=reason, actor=principal.subject)
    await _publish(session, rt, change)
    return key_account_out(change.customer)


@router.get(
    "/portfolio",
    summary="An account manager's portfolio: their own, or for a supervisor any manager's",
    response_model=list[PortfolioRowOut],
    responses=PROBLEMS,
)
async def get_portfolio(
    principal: Caller,
    session: DbSession,
    manager: Annotated[str | None, Query(max_length=128, description="Whose portfolio (supervisors)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    if principal.has_role(*DECIDERS):
        manager = manager or (principal.subject if principal.has_role("key_account_manager") else None)
        if not manager:
            raise InvalidInput("Say whose portfolio: ?manager=<user id>", field="manager")
    elif principal.has_role("key_account_manager"):
        if manager not in (None, principal.subject):
            raise Forbidden("An account manager reads only their own portfolio")
        manager = principal.subject
    else:
        raise Forbidden("This needs one of the roles admin, key_account_manager, supervisor")
    where = key_accounts.key_accounts_where(tier=None, manager=manager)
    return await _rows(session, where, offset, limit)


@router.get("", summary="Key accounts, by tier and manager", response_model=list[PortfolioRowOut], responses=PROBLEMS)
async def list_key_accounts(
    _: Decider,
    session: DbSession,
    tier: Tier | None = None,
    manager: Annotated[str | None, Query(max_length=128)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    return await _rows(session, key_accounts.key_accounts_where(tier=tier, manager=manager), offset, limit)


async def _rows(session: DbSession, where: Any, offset: int, limit: int) -> JSONResponse:
    total, page = await key_accounts.portfolio(session, where, offset, limit)
    items = [portfolio_out(row).model_dump(mode="json") for row in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@router.get(
    "/{customer_id}/history",
    summary="Every change of the key account, newest first",
    response_model=list[AssignmentOut],
    responses=PROBLEMS,
)
async def get_history(
    customer_id: ExistingCustomer,
    session: DbSession,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await key_accounts.history(session, customer_id, offset, limit)
    items = [assignment_out(e).model_dump(mode="json") for e in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})
