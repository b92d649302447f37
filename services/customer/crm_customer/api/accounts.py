"""Billing accounts (账户) and group hierarchies (集团客户 → 分支账户 → 号码): read, open, re-parent, walk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.api.access import Access, ExistingCustomer, Reader, Writer, check_visible
from crm_customer.domain import party
from crm_customer.models import BillingAccount, Customer, Subscription
from crm_customer.schemas.accounts import (
    AccountCreate,
    AccountLine,
    AccountNode,
    AccountOut,
    AccountPatch,
)
from crm_kit.auth import Principal
from crm_kit.errors import InvalidInput, NotFound
from crm_kit.presentation import JSONResponse, mask_msisdn, shanghai
from crm_kit.service import DbSession

ACCOUNTS = "/api/v1/accounts"
router = APIRouter(tags=["Billing accounts"])
PROBLEMS: dict[int | str, dict[str, Any]] = {404: {}, 422: {}}
AccountIdPath = Annotated[str, Path(max_length=64)]


async def _visible_account(
    session: AsyncSession, account_id: str, principal: Principal, *, for_update: bool = False
) -> BillingAccount:
    """The account, 404 when it does not exist or its customer is outside the caller's reach."""
    account = await party.account_or_404(session, account_id, for_update=for_update)
    owner = await session.get_one(Customer, account.customer_id)
    try:
        await check_visible(session, principal, owner)
    except NotFound:
        raise NotFound(f"No account {account_id}", field="account_id") from None
    return account


async def account_out(session: AsyncSession, account: BillingAccount, access: Access) -> dict[str, Any]:
    children = (
        await session.scalars(
            select(BillingAccount.id).where(BillingAccount.parent_id == account.id).order_by(BillingAccount.id)
        )
    ).all()
    lines = (
        await session.scalars(
            select(Subscription).where(Subscription.account_id == account.id).order_by(Subscription.id)
        )
    ).all()
    reveal = access.reveal_pii
    if lines:
        await access.audit([account.customer_id], "msisdn", session)
    return AccountOut(
        id=account.id,
        href=f"{ACCOUNTS}/{account.id}",
        name=account.name,
        account_type=account.account_type,
        status=account.status,
        customer_id=account.customer_id,
        parent_id=account.parent_id,
        children=list(children),
        lines=[
            AccountLine(id=line.id, msisdn=line.msisdn if reveal else mask_msisdn(line.msisdn), status=line.status)
            for line in lines
        ],
        created_at=shanghai(account.created_at),
        updated_at=shanghai(account.updated_at),
    ).model_dump(mode="json", by_alias=True)


@router.get(f"{ACCOUNTS}/{{account_id}}", summary="A billing account", response_model=AccountOut, responses=PROBLEMS)
async def get_account(account_id: AccountIdPath, session: DbSession, access: Reader) -> JSONResponse:
    account = await _visible_account(session, account_id, access.principal)
    return JSONResponse(await account_out(session, account, access), headers=access.headers)


@router.get(
    "/api/v1/customers/{customer_id}/accounts",
    summary="A customer's billing accounts",
    response_model=list[AccountOut],
    responses=PROBLEMS,
)
async def customer_accounts(
    customer_id: ExistingCustomer,
    session: DbSession,
    access: Reader,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    query = select(BillingAccount).where(BillingAccount.customer_id == customer_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = (await session.scalars(query.order_by(BillingAccount.id).offset(offset).limit(limit))).all()
    items = [await account_out(session, account, access) for account in page]
    return JSONResponse(
        items, headers={**access.headers, "X-Total-Count": str(total), "X-Result-Count": str(len(items))}
    )


@router.post(
    ACCOUNTS,
    summary="Open a group or branch account for a customer",
    status_code=201,
    response_model=AccountOut,
    responses={**PROBLEMS, 409: {"description": "the parent would make a cycle"}},
)
async def create_account(body: AccountCreate, session: DbSession, principal: Writer, access: Reader) -> JSONResponse:
    owner = await session.get(Customer, body.customer_id)
    if owner is None:
        raise InvalidInput(f"No customer {body.customer_id}", field="customerId")
    try:
        await check_visible(session, principal, owner)
    except NotFound:
        raise InvalidInput(f"No customer {body.customer_id}", field="customerId") from None
    if owner.merged_into is not None or owner.erased_at is not None:
        raise InvalidInput(f"Customer {body.customer_id} is merged or erased", field="customerId")
    if body.parent_id is not None:
        await _visible_account(session, body.parent_id, principal)
    account = await party.create_account(session, owner.id, body.name, body.account_type, body.parent_id)
    return JSONResponse(
        await account_out(session, account, access),
        status_code=201,
        headers={**access.headers, "Location": f"{ACCOUNTS}/{account.id}"},
    )


@router.patch(
    f"{ACCOUNTS}/{{account_id}}",
    summary="Rename, re-parent or change the status of an account (JSON merge-patch)",
    response_model=AccountOut,
    responses={**PROBLEMS, 409: {"description": "the parent would make a cycle"}},
    openapi_extra={
        "requestBody": {
            "content": {"application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/AccountPatch"}}}
        }
    },
)
async def patch_account(
    account_id: AccountIdPath, body: AccountPatch, session: DbSession, principal: Writer, access: Reader
) -> JSONResponse:
    account = await _visible_account(session, account_id, principal, for_update=True)
    values = {key: getattr(body, key) for key in body.model_fields_set}
    await party.patch_account(session, account, values)
    return JSONResponse(await account_out(session, account, access), headers=access.headers)


def node_out(node: party.Node) -> AccountNode:
    return AccountNode(
        id=node.account.id,
        name=node.account.name,
        account_type=node.account.account_type,
        status=node.account.status,
        customer_id=node.account.customer_id,
        line_count=node.line_count,
        children=[node_out(child) for child in node.children],
        truncated=node.truncated,
    )


@router.get(
    f"{ACCOUNTS}/{{account_id}}/hierarchy",
    summary="The account tree below an account (at most 10 levels)",
    response_model=AccountNode,
    responses=PROBLEMS,
)
async def account_hierarchy(account_id: AccountIdPath, session: DbSession, access: Reader) -> AccountNode:
    account = await _visible_account(session, account_id, access.principal)
    return node_out(await party.hierarchy(session, account))
