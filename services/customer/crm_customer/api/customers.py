"""TMF629 Customer Management: the customer resource, retrieve and list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.api.access import Reader, check_visible, visible
from crm_customer.models import (
    BillingAccount,
    Customer,
    Subscription,
)
from crm_customer.schemas.customers import TmfCustomer
from crm_kit.errors import InvalidInput, NotFound
from crm_kit.presentation import mask_id_card, mask_msisdn, shanghai, yuan
from crm_kit.service import DbSession

BASE = "/tmf-api/customerManagement/v4"
router = APIRouter(prefix=BASE, tags=["TMF629 Customer"])

ALWAYS = ("id", "href", "@type", "@baseType")
FIELDS = set(TmfCustomer.model_json_schema(by_alias=True)["properties"])


def _fee(fen: int | None) -> dict[str, Any] | None:
    if fen is None:
        return None
    return {"unit": "CNY", "value": yuan(fen), "valueFen": fen}


def _as_is(value: str) -> str:
    return value


def customer_resource(
    customer: Customer, accounts: list[BillingAccount], lines: list[Subscription], *, reveal: bool = False
) -> dict[str, Any]:
    """The TMF629 representation; phone and ID-card numbers masked unless `reveal` (see `access`)."""
    msisdn = _as_is if reveal else mask_msisdn
    id_card = _as_is if reveal else mask_id_card
    party_type = "Organization" if customer.customer_type == "organization" else "Individual"
    party_path = "organization" if party_type == "Organization" else "individual"
    characteristic = [
        {"name": "customerType", "value": customer.customer_type, "valueType": "string"},
        {"name": "region", "value": customer.region, "valueType": "string"},
    ]
    if customer.id_card_no:
        characteristic.append({"name": "idCardNumber", "value": id_card(customer.id_card_no), "valueType": "string"})
    mobiles = [line for line in lines if line.status in ("active", "suspended")]
    resource = TmfCustomer.model_validate(
        {
            "id": customer.id,
            "href": f"{BASE}/customer/{customer.id}",
            "name": customer.name,
            "status": customer.status,
            "validFor": {"startDateTime": shanghai(customer.created_at)},
            "lastUpdate": shanghai(customer.updated_at),
            "engagedParty": {
                "id": customer.id,
                "href": f"/tmf-api/partyManagement/v4/{party_path}/{customer.id}",
                "name": customer.name,
                "@referredType": party_type,
            },
            "account": [{"id": a.id, "@referredType": "BillingAccount"} for a in accounts],
            "contactMedium": [
                {
                    "mediumType": "mobile",
                    "preferred": i == 0,
                    "characteristic": {"contactType": "mobile", "phoneNumber": msisdn(line.msisdn)},
                }
                for i, line in enumerate(mobiles)
            ],
            "characteristic": characteristic,
            "subscription": [
                {
                    "id": line.id,
                    "msisdn": msisdn(line.msisdn),
                    "status": line.status,
                    "statusReason": line.status_reason,
                    "accountId": line.account_id,
                    "plan": {"code": line.plan_code, "name": line.plan_name, "monthlyFee": _fee(line.monthly_fee_fen)},
                    "paymentMode": line.payment_mode,
                    "activationDate": shanghai(line.activated_at),
                    "endDate": shanghai(line.ended_at),
                    "contractEnd": line.contract_end.isoformat() if line.contract_end else None,
                }
                for line in lines
            ],
        }
    )
    return resource.model_dump(mode="json", by_alias=True)


def parse_fields(
    fields: Annotated[str | None, Query(description="Comma-separated attributes to return")] = None,
) -> set[str] | None:
    if not fields:
        return None
    wanted = {f.strip() for f in fields.split(",") if f.strip()}
    unknown = wanted - FIELDS
    if unknown:
        raise InvalidInput(
            f"Unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(FIELDS))}", field="fields"
        )
    return wanted


Fields = Annotated[set[str] | None, Depends(parse_fields)]


def select_fields(resource: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    if fields is None:
        return resource
    return {k: v for k, v in resource.items() if k in fields or k in ALWAYS}


@dataclass
class CustomerView:
    customer: Customer
    accounts: list[BillingAccount] = field(default_factory=list)
    lines: list[Subscription] = field(default_factory=list)


async def load_views(session: AsyncSession, ids: Select[tuple[str]]) -> list[CustomerView]:
    """The customers whose ids `ids` selects, with their lines, in id order.

    Customers and lines come from ONE statement: each statement sees one committed state, so a customer's
    status always agrees with the lines shown beside it (separate SELECTs could each see a different commit
    of the consumer). Accounts are only ever added, each with its first line, so reading them afterwards
    still finds every account the lines name.
    """
    rows = (
        await session.execute(
            select(Customer, Subscription)
            .outerjoin(Subscription, Subscription.customer_id == Customer.id)
            .where(Customer.id.in_(ids))
            .order_by(Customer.id, Subscription.activated_at.asc().nulls_last(), Subscription.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    views: dict[str, CustomerView] = {}
    for customer, line in rows:
        view = views.setdefault(customer.id, CustomerView(customer))
        if line is not None:
            view.lines.append(line)
    if views:
        accounts = await session.scalars(
            select(BillingAccount).where(BillingAccount.customer_id.in_(list(views))).order_by(BillingAccount.id)
        )
        for account in accounts:
            views[account.customer_id].accounts.append(account)
    return list(views.values())


PII_FIELDS = "msisdn,id_card_no"


def resource(view: CustomerView, reveal: bool = False) -> dict[str, Any]:
    return customer_resource(view.customer, view.accounts, view.lines, reveal=reveal)


async def load_customer(customer_id: str, session: DbSession, access: Reader) -> CustomerView:
    found = await load_views(session, select(Customer.id).where(Customer.id == customer_id))
    if not found:
        raise NotFound(f"No customer {customer_id}", field="id")
    check_visible(access.principal, found[0].customer)
    return found[0]


@router.get("/customer/{customer_id}", summary="Retrieve a customer", response_model=TmfCustomer, responses={404: {}})
async def retrieve_customer(
    customer: Annotated[CustomerView, Depends(load_customer)], fields: Fields, access: Reader, session: DbSession
) -> JSONResponse:
    await access.audit(session, [customer.customer.id], PII_FIELDS)
    return JSONResponse(select_fields(resource(customer, access.reveal_pii), fields), headers=access.headers)


@router.get("/customer", summary="List customers", response_model=list[TmfCustomer])
async def list_customers(
    session: DbSession,
    fields: Fields,
    access: Reader,
    status: Annotated[str | None, Query(pattern="^(active|suspended|inactive)$")] = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Prefix of the customer's name, ignoring letter case")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    query = select(Customer.id).where(visible(access.principal))
    if status:
        query = query.where(Customer.status == status)
    if region:
        query = query.where(Customer.region == region)
    if name:
        # LIKE is case-insensitive on SQLite and case-sensitive on PostgreSQL: say which, the same everywhere
        query = query.where(Customer.name.istartswith(name, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = await load_views(session, query.order_by(Customer.id).offset(offset).limit(limit))
    await access.audit(session, [view.customer.id for view in page], PII_FIELDS)
    items = [select_fields(resource(view, access.reveal_pii), fields) for view in page]
    return JSONResponse(
        items,
        headers={**access.headers, "X-Total-Count": str(total), "X-Result-Count": str(len(items))},
    )
