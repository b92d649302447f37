"""TMF629 Customer Management: the customer resource: create, retrieve, merge-patch, list; and the agents'
customer search (客户查询) beside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer import events
from crm_customer.api.access import (
    CustomerForUpdate,
    Reader,
    Writer,
    check_visible,
    partner_only,
    portfolio_only,
    visible,
)
from crm_customer.domain import party, search
from crm_customer.domain.lines import count_lines
from crm_customer.domain.party import (
    PARTY_COLUMNS,
    Medium,
    PartyFields,
    Trait,
    guess_by,
    normalise_term,
    prefix_range,
)
from crm_customer.models import (
    BillingAccount,
    ContactMedium,
    Customer,
    CustomerCharacteristic,
    CustomerMetrics,
    SegmentMember,
    Subscription,
)
from crm_customer.schemas.customers import (
    MEDIUM_KEY,
    CustomerCreate,
    CustomerPatch,
    SearchHit,
    SearchMatch,
    TmfCustomer,
)
from crm_kit.errors import InvalidInput, NotFound
from crm_kit.outbox import stage
from crm_kit.presentation import JSONResponse, mask_id_card, mask_msisdn, shanghai, yuan
from crm_kit.service import DbSession, RuntimeDep

BASE = "/tmf-api/customerManagement/v4"
router = APIRouter(tags=["TMF629 Customer"])
"""Full paths: the agents' search (/api/v1/customers/search) lives here too, ahead of /api/v1/customers/{id}/…"""

ALWAYS = ("id", "href", "@type", "@baseType")
FIELDS = set(TmfCustomer.model_json_schema(by_alias=True)["properties"])


def _fee(fen: int | None) -> dict[str, Any] | None:
    if fen is None:
        return None
    return {"unit": "CNY", "value": yuan(fen), "valueFen": fen}


def _as_is(value: str) -> str:
    return value


def _medium(medium: ContactMedium, msisdn: Callable[[str], str | None]) -> dict[str, Any]:
    key = MEDIUM_KEY.get(medium.medium_type, "value")
    value = msisdn(medium.value) if key in ("phoneNumber", "faxNumber") else medium.value
    return {
        "mediumType": medium.medium_type,
        "preferred": medium.preferred,
        "characteristic": {"contactType": medium.medium_type, key: value},
    }


def customer_resource(view: CustomerView, *, reveal: bool = False) -> dict[str, Any]:
    """The TMF629 representation; phone and ID-card numbers masked unless `reveal` (see `access`)."""
    customer, metrics = view.customer, view.metrics
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
    own = {
        "registrationNo": customer.registration_no,
        "gender": customer.gender,
        "birthDate": customer.birth_date.isoformat() if customer.birth_date else None,
        "industry": customer.industry,
    }
    characteristic += [
        {"name": name, "value": value, "valueType": "date" if name == "birthDate" else "string"}
        for name, value in own.items()
        if value is not None
    ]
    characteristic += [{"name": t.name, "value": t.value, "valueType": t.value_type} for t in view.traits]
    mobiles = [line for line in view.lines if line.status in ("active", "suspended")]
    media_preferred = any(m.preferred for m in view.media)
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
            "account": [{"id": a.id, "@referredType": "BillingAccount"} for a in view.accounts],
            "contactMedium": [
                {
                    "mediumType": "mobile",
                    "preferred": i == 0 and not media_preferred,
                    "characteristic": {"contactType": "mobile", "phoneNumber": msisdn(line.msisdn)},
                }
                for i, line in enumerate(mobiles)
            ]
            + [_medium(m, msisdn) for m in view.media],
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
                for line in view.lines
            ],
            "partyType": party_type,
            "keyAccount": {
                "isKeyAccount": bool(customer.key_account),
                "tier": customer.key_account_tier,
                "accountManager": customer.account_manager,
            },
            "segments": {
                "valueTier": metrics.value_tier if metrics else None,
                "activityTier": metrics.activity_tier if metrics else None,
                "lifecycleStage": metrics.lifecycle_stage if metrics else None,
            },
        }
    )
    return resource.model_dump(mode="json", by_alias=True)


async def parse_fields(
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
    media: list[ContactMedium] = field(default_factory=list)
    traits: list[CustomerCharacteristic] = field(default_factory=list)
    metrics: CustomerMetrics | None = None


async def load_views(session: AsyncSession, ids: Sequence[str]) -> list[CustomerView]:
    """The customers `ids` names, with their lines, in the order of `ids`.

    Customers and lines come from ONE statement: each statement sees one committed state, so a customer's
    status always agrees with the lines shown beside it (separate SELECTs could each see a different commit
    of the consumer). Accounts are only ever added, each with its first line, so reading them afterwards
    still finds every account the lines name; contact media, characteristics and metrics change on their own.
    """
    if not ids:
        return []
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
    if not views:
        return []
    found = list(views)
    for account in await session.scalars(
        select(BillingAccount).where(BillingAccount.customer_id.in_(found)).order_by(BillingAccount.id)
    ):
        views[account.customer_id].accounts.append(account)
    for medium in await session.scalars(
        select(ContactMedium).where(ContactMedium.customer_id.in_(found)).order_by(ContactMedium.id)
    ):
        views[medium.customer_id].media.append(medium)
    for trait in await session.scalars(
        select(CustomerCharacteristic)
        .where(CustomerCharacteristic.customer_id.in_(found))
        .order_by(CustomerCharacteristic.name)
    ):
        views[trait.customer_id].traits.append(trait)
    for metrics in await session.scalars(select(CustomerMetrics).where(CustomerMetrics.customer_id.in_(found))):
        views[metrics.customer_id].metrics = metrics
    return [views[i] for i in ids if i in views]


PII_FIELDS = "msisdn,id_card_no"


def resource(view: CustomerView, reveal: bool = False) -> dict[str, Any]:
    return customer_resource(view, reveal=reveal)


async def load_customer(customer_id: str, session: DbSession, access: Reader) -> CustomerView:
    found = await load_views(session, [customer_id])
    if not found:
        raise NotFound(f"No customer {customer_id}", field="id")
    await check_visible(session, access.principal, found[0].customer)
    return found[0]


@router.get(
    f"{BASE}/customer/{{customer_id}}", summary="Retrieve a customer", response_model=TmfCustomer, responses={404: {}}
)
async def retrieve_customer(
    customer: Annotated[CustomerView, Depends(load_customer)], fields: Fields, access: Reader, session: DbSession
) -> JSONResponse:
    await access.audit([customer.customer.id], PII_FIELDS, session)
    return JSONResponse(select_fields(resource(customer, access.reveal_pii), fields), headers=access.headers)


SORTS = {"id": Customer.id, "name": Customer.name_key, "createdAt": Customer.created_at, "status": Customer.status}


async def parse_sort(
    sort: Annotated[
        str | None,
        Query(max_length=100, description="Comma-separated keys among id, name, createdAt, status; `-` descending"),
    ] = None,
) -> list[Any]:
    """The ORDER BY; the id always breaks ties so pages never overlap."""
    order: list[Any] = []
    for part in (p.strip() for p in (sort or "").split(",")):
        if not part:
            continue
        key = part.removeprefix("-").removeprefix("+")
        if key not in SORTS:
            raise InvalidInput(f"Cannot sort by {key}; sort by one of {', '.join(SORTS)}", field="sort")
        column = SORTS[key]
        order.append(column.desc().nulls_last() if part.startswith("-") else column.asc().nulls_last())
    return [*order, Customer.id]


@router.get(f"{BASE}/customer", summary="List customers", response_model=list[TmfCustomer])
async def list_customers(
    session: DbSession,
    fields: Fields,
    access: Reader,
    order: Annotated[list[Any], Depends(parse_sort)],
    status: Annotated[str | None, Query(pattern="^(active|suspended|inactive)$")] = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Prefix of the customer's name, ignoring letter case")
    ] = None,
    customer_type: Annotated[Literal["individual", "organization"] | None, Query(alias="customerType")] = None,
    value_tier: Annotated[Literal["high", "mid", "low"] | None, Query(alias="valueTier")] = None,
    activity_tier: Annotated[Literal["high", "mid", "low", "dormant"] | None, Query(alias="activityTier")] = None,
    lifecycle_stage: Annotated[
        Literal["new", "growing", "stable", "declining", "at_risk", "churned"] | None, Query(alias="lifecycleStage")
    ] = None,
    segment: Annotated[str | None, Query(max_length=64, description="Members of this rule segment")] = None,
    key_account: Annotated[bool | None, Query(alias="keyAccount")] = None,
    account_manager: Annotated[str | None, Query(alias="accountManager", max_length=128)] = None,
    include_merged: Annotated[
        bool, Query(alias="includeMerged", description="Also the duplicates merged into another customer")
    ] = False,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    query = select(Customer.id).where(visible(access.principal))
    if not include_merged:
        query = query.where(Customer.merged_into.is_(None))
    for column, value in (
        (Customer.status, status),
        (Customer.region, region),
        (Customer.customer_type, customer_type),
        (Customer.key_account, key_account),
        (Customer.account_manager, account_manager),
    ):
        if value is not None:
            query = query.where(column == value)
    if name:
        # the same answer on every database: the name's case-folded key, by prefix, LIKE wildcards literal
        query = query.where(prefix_range(Customer.name_key, name.lower(), digits=False))
    tiers = [
        (CustomerMetrics.value_tier, value_tier),
        (CustomerMetrics.activity_tier, activity_tier),
        (CustomerMetrics.lifecycle_stage, lifecycle_stage),
    ]
    if any(value is not None for _, value in tiers):
        query = query.join(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        for column, value in tiers:
            if value is not None:
                query = query.where(column == value)
    if segment:
        query = query.where(
            Customer.id.in_(select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment))
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    ids = (await session.scalars(query.order_by(*order).offset(offset).limit(limit))).all()
    page = await load_views(session, ids)
    await access.audit([view.customer.id for view in page], PII_FIELDS, session)
    items = [select_fields(resource(view, access.reveal_pii), fields) for view in page]
    return JSONResponse(
        items,
        headers={**access.headers, "X-Total-Count": str(total), "X-Result-Count": str(len(items))},
    )


def party_fields(body: CustomerCreate | CustomerPatch) -> PartyFields:
    present = body.model_fields_set
    return PartyFields(
        values={k: getattr(body, k) for k in PARTY_COLUMNS},
        media=None
        if body.contact_medium is None
        else [Medium(m.medium_type, m.value, m.preferred) for m in body.contact_medium],
        traits=None
        if body.characteristic is None
        else [Trait(t.name, t.value, t.value_type) for t in body.characteristic],
        present=set(present),
    )


@router.post(
    f"{BASE}/customer",
    summary="Create a customer entered in the CRM (客户建档)",
    status_code=201,
    response_model=TmfCustomer,
    responses={422: {}},
)
async def create_customer(
    body: CustomerCreate, session: DbSession, rt: RuntimeDep, principal: Writer, access: Reader
) -> JSONResponse:
    customer = await party.create_customer(session, body.customer_type, party_fields(body))
    await stage(session, rt.contracts, [events.profile_created(customer)])
    view = (await load_views(session, [customer.id]))[0]
    await access.audit([customer.id], PII_FIELDS, session)
    return JSONResponse(
        resource(view, access.reveal_pii),
        status_code=201,
        headers={**access.headers, "Location": f"{BASE}/customer/{customer.id}"},
    )


@router.patch(
    f"{BASE}/customer/{{customer_id}}",
    summary="Update a customer (JSON merge-patch)",
    response_model=TmfCustomer,
    responses={404: {}, 422: {}},
    openapi_extra={
        "requestBody": {
            "content": {"application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/CustomerPatch"}}}
        }
    },
)
async def patch_customer(
    customer_id: CustomerForUpdate,
    body: CustomerPatch,
    session: DbSession,
    rt: RuntimeDep,
    access: Reader,
) -> JSONResponse:
    customer = await session.get_one(Customer, customer_id)
    if await party.patch_customer(session, customer, party_fields(body)):
        counts = await count_lines(session, customer_id)
        await stage(session, rt.contracts, [events.profile_updated(customer, counts)])
    view = (await load_views(session, [customer_id]))[0]
    await access.audit([customer_id], PII_FIELDS, session)
    return JSONResponse(resource(view, access.reveal_pii), headers=access.headers)


# --- search (客户查询): /api/v1/customers/search ------------------------------------------------------------------

SEARCH = "/api/v1/customers/search"
SEARCH_PII = {"phone": "msisdn", "id_card": "id_card_no"}


@router.get(SEARCH, tags=["Customer search"], summary="Find customers by name, number, ID card, credit code or account")
async def search_customers(
    access: Reader,
    q: Annotated[str, Query(min_length=1, max_length=64, description="What the customer gave: name, number, …")],
    by: Annotated[
        Literal["auto", "name", "phone", "id_card", "account", "registration_no"],
        Query(description="auto guesses from the shape of q"),
    ] = "auto",
    match: Annotated[Literal["prefix", "exact"], Query()] = "prefix",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONResponse:
    """Exact matches first, then those that start with the term; one statement, no request transaction (the
    audit row of an unmasked answer has one of its own)."""
    kind = guess_by(q.strip()) if by == "auto" else by
    term = normalise_term(q, kind)
    manager = access.principal.subject if portfolio_only(access.principal) else None
    partner = (access.principal.partner_id or "") if partner_only(access.principal) else None  # "": no dealer's
    found = await search.search(
        access.db, kind, term, exact=match == "exact", limit=limit, manager=manager, partner=partner
    )
    reveal = access.reveal_pii
    msisdn = _as_is if reveal else mask_msisdn
    id_card = _as_is if reveal else mask_id_card
    hits = [
        SearchHit(
            **{**hit.customer, "id_card_no": id_card(hit.customer["id_card_no"])},
            href=f"{BASE}/customer/{hit.customer['id']}",
            exact=hit.exact,
            matched=SearchMatch(by=kind, msisdn=[msisdn(n) or "" for n in hit.msisdn], account_id=hit.account_id),
        )
        for hit in found
    ]
    hits.sort(key=lambda h: (not h.exact, h.name or "", h.id))
    await access.audit([h.id for h in hits], SEARCH_PII.get(kind, PII_FIELDS))
    items = [h.model_dump(mode="json", by_alias=True) for h in hits]
    return JSONResponse(items, headers={**access.headers, "X-Result-Count": str(len(items)), "X-Search-By": kind})
