"""Routes: TMF629 Customer Management (read side); a customer's consents and do-not-disturb, billing summary,
usage summary and interaction timeline (/api/v1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer import domain, events
from crm_customer.models import (
    AccountStanding,
    BillingAccount,
    BillingPayment,
    ConsentHistory,
    Customer,
    DoNotDisturb,
    Subscription,
    TimelineEntry,
)
from crm_customer.schemas import (
    AccountStandingOut,
    Amount,
    BillingSummaryOut,
    Channel,
    ConsentHistoryOut,
    ConsentIn,
    ConsentOut,
    CustomerConsentsOut,
    DoNotDisturbIn,
    DoNotDisturbOut,
    LastPaymentOut,
    MonthSpendOut,
    PaymentBehaviourOut,
    Purpose,
    TimelineEntryOut,
    TimelineKind,
    TmfCustomer,
    UsageSummaryOut,
)
from crm_kit.db import utcnow
from crm_kit.errors import InvalidInput, NotFound
from crm_kit.outbox import stage
from crm_kit.presentation import mask_id_card, mask_msisdn, shanghai, yuan
from crm_kit.service import DbSession, RuntimeDep

BASE = "/tmf-api/customerManagement/v4"
router = APIRouter(prefix=BASE, tags=["TMF629 Customer"])

ALWAYS = ("id", "href", "@type", "@baseType")
FIELDS = set(TmfCustomer.model_json_schema(by_alias=True)["properties"])


def _fee(fen: int | None) -> dict[str, Any] | None:
    if fen is None:
        return None
    return {"unit": "CNY", "value": yuan(fen), "valueFen": fen}


def customer_resource(customer: Customer, accounts: list[BillingAccount], lines: list[Subscription]) -> dict[str, Any]:
    """The TMF629 representation. Personal numbers are masked (the unmasking path comes with auth)."""
    party_type = "Organization" if customer.customer_type == "organization" else "Individual"
    party_path = "organization" if party_type == "Organization" else "individual"
    characteristic = [
        {"name": "customerType", "value": customer.customer_type, "valueType": "string"},
        {"name": "region", "value": customer.region, "valueType": "string"},
    ]
    if customer.id_card_no:
        characteristic.append(
            {"name": "idCardNumber", "value": mask_id_card(customer.id_card_no), "valueType": "string"}
        )
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
                    "characteristic": {"contactType": "mobile", "phoneNumber": mask_msisdn(line.msisdn)},
                }
                for i, line in enumerate(mobiles)
            ],
            "characteristic": characteristic,
            "subscription": [
                {
                    "id": line.id,
                    "msisdn": mask_msisdn(line.msisdn),
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


def resource(view: CustomerView) -> dict[str, Any]:
    return customer_resource(view.customer, view.accounts, view.lines)


async def load_customer(customer_id: str, session: DbSession) -> CustomerView:
    found = await load_views(session, select(Customer.id).where(Customer.id == customer_id))
    if not found:
        raise NotFound(f"No customer {customer_id}", field="id")
    return found[0]


@router.get("/customer/{customer_id}", summary="Retrieve a customer", response_model=TmfCustomer, responses={404: {}})
async def retrieve_customer(customer: Annotated[CustomerView, Depends(load_customer)], fields: Fields) -> JSONResponse:
    return JSONResponse(select_fields(resource(customer), fields))


@router.get("/customer", summary="List customers", response_model=list[TmfCustomer])
async def list_customers(
    request: Request,
    response: Response,
    session: DbSession,
    fields: Fields,
    status: Annotated[str | None, Query(pattern="^(active|suspended|inactive)$")] = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Prefix of the customer's name, ignoring letter case")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    query = select(Customer.id)
    if status:
        query = query.where(Customer.status == status)
    if region:
        query = query.where(Customer.region == region)
    if name:
        # LIKE is case-insensitive on SQLite and case-sensitive on PostgreSQL: say which, the same everywhere
        query = query.where(Customer.name.istartswith(name, autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    page = await load_views(session, query.order_by(Customer.id).offset(offset).limit(limit))
    items = [select_fields(resource(view), fields) for view in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


# --- consents (营销授权) and do-not-disturb (免打扰) ---------------------------------------------------------

CONSENTS_BASE = "/api/v1/customers/{customer_id}"
consent_router = APIRouter(prefix=CONSENTS_BASE, tags=["Consents"])
PROBLEMS: dict[int | str, dict[str, Any]] = {404: {}, 422: {}}


async def existing_customer(customer_id: Annotated[str, Path(max_length=64)], session: DbSession) -> str:
    if await session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    return customer_id


async def customer_for_update(customer_id: Annotated[str, Path(max_length=64)], session: DbSession) -> str:
    """The customer, locked (PostgreSQL) so that one customer's consent changes apply one at a time."""
    found = await session.scalar(select(Customer.id).where(Customer.id == customer_id).with_for_update())
    if found is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    return found


ExistingCustomer = Annotated[str, Depends(existing_customer)]
CustomerForUpdate = Annotated[str, Depends(customer_for_update)]
Actor = Annotated[
    str | None,
    Header(alias="X-Actor", min_length=1, max_length=128, description="Who makes the change (until auth says)"),
]


def consent_out(view: domain.ConsentView) -> ConsentOut:
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
    state = await domain.load_consents(session, customer_id)
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
    total, page = await domain.consent_history(session, customer_id, offset, limit)
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
    actor: Actor = None,
) -> ConsentOut:
    change = await domain.record_consent(
        session,
        customer_id,
        channel,
        purpose,
        granted=body.granted,
        source=body.source,
        recorded_at=body.recorded_at,
        actor=actor,
    )
    state = await domain.load_consents(session, customer_id)
    if change.changed:
        await stage(session, rt.contracts, [events.consent_changed(change.consent, state.dnd, change.event_id)])
    return consent_out(next(v for v in state.items if (v.channel, v.purpose) == (channel, purpose)))


@consent_router.put(
    "/do-not-disturb",
    summary="Switch the customer's do-not-disturb (免打扰) on or off",
    responses={**PROBLEMS, 409: {"description": "recorded_at is older than the setting on record"}},
)
async def put_do_not_disturb(
    customer_id: CustomerForUpdate, body: DoNotDisturbIn, session: DbSession, rt: RuntimeDep, actor: Actor = None
) -> DoNotDisturbOut:
    change = await domain.record_dnd(
        session,
        customer_id,
        enabled=body.enabled,
        until=body.until,
        source=body.source,
        recorded_at=body.recorded_at,
        actor=actor,
    )
    if change.changed:
        await stage(session, rt.contracts, [events.dnd_changed(change.dnd, change.event_id)])
    return dnd_out(change.dnd, domain.dnd_active(change.dnd.enabled, change.dnd.until, utcnow()))


# --- billing projections (ARPU, payment behaviour, activity) and the interaction timeline ---------------------

billing_router = APIRouter(prefix=CONSENTS_BASE, tags=["Billing and timeline"])


def amount(fen: int | None) -> Amount | None:
    return None if fen is None else Amount(fen=fen, yuan=yuan(fen))


def _amount(fen: int) -> Amount:
    return Amount(fen=fen, yuan=yuan(fen))


def account_out(standing: AccountStanding) -> AccountStandingOut:
    return AccountStandingOut(
        account_id=standing.account_id,
        collection_status=standing.collection_status,
        collection_status_at=shanghai(standing.collection_status_at),
        collection_outstanding=amount(standing.collection_outstanding_fen),
        credit_limit=amount(standing.credit_limit_fen),
        credit_limit_at=shanghai(standing.credit_limit_at),
    )


def last_payment_out(payment: BillingPayment | None) -> LastPaymentOut | None:
    if payment is None:
        return None
    return LastPaymentOut(
        kind=payment.kind,  # type: ignore[arg-type]
        id=payment.id,
        amount=_amount(payment.amount_fen),
        channel=payment.channel,
        invoice_id=payment.invoice_id,
        at=shanghai(payment.at) or "",
    )


@billing_router.get(
    "/billing-summary",
    summary="ARPU, spend trend, payment behaviour, arrears, collection status and credit limit (账单/缴费画像)",
    responses=PROBLEMS,
)
async def get_billing_summary(customer_id: ExistingCustomer, session: DbSession) -> BillingSummaryOut:
    s = await domain.billing_summary(session, customer_id)
    limits = [a.credit_limit_fen for a in s.accounts if a.credit_limit_fen is not None]
    return BillingSummaryOut(
        customer_id=customer_id,
        arpu=amount(s.arpu_fen),
        arpu_months=s.arpu_months,
        spend_trend=[
            MonthSpendOut(billing_period=m.billing_period, amount_due=_amount(m.amount_due_fen), invoices=m.invoices)
            for m in s.trend
        ],
        payment=PaymentBehaviourOut(
            status=s.payment_status,  # type: ignore[arg-type]
            invoices_paid_on_time=s.paid_on_time,
            invoices_paid_late=s.paid_late,
            invoices_unpaid=s.unpaid,
            overdue_invoices=s.overdue_invoices,
            outstanding=_amount(s.outstanding_fen),
            failed_payments=s.failed_payments,
            last_payment=last_payment_out(s.last_payment),
        ),
        collection_status=domain.worst_collection_status([a.collection_status for a in s.accounts]),
        credit_limit=amount(sum(limits)) if limits else None,
        accounts=[account_out(a) for a in s.accounts],
    )


@billing_router.get(
    "/usage-summary", summary="Activity over the last 30 days: voice, SMS, data, roaming (用量)", responses=PROBLEMS
)
async def get_usage_summary(
    customer_id: ExistingCustomer,
    session: DbSession,
    as_of: Annotated[
        date | None, Query(description="Last day of the 30-day window, China Standard Time (default: today)")
    ] = None,
) -> UsageSummaryOut:
    a = await domain.usage_summary(session, customer_id, as_of or domain.shanghai_today())
    return UsageSummaryOut(
        customer_id=customer_id,
        from_date=a.first_day.isoformat(),
        to_date=a.last_day.isoformat(),
        days=domain.ACTIVITY_DAYS,
        voice_minutes=a.voice_minutes,
        sms_count=a.sms_count,
        data_mb=a.data_mb,
        roaming_voice_minutes=a.roaming_voice_minutes,
        roaming_data_mb=a.roaming_data_mb,
        days_active=a.days_active,
        roaming_days=a.roaming_days,
        active_lines=a.lines,
    )


def timeline_out(entry: TimelineEntry) -> TimelineEntryOut:
    return TimelineEntryOut(
        id=entry.seq,
        customer_id=entry.customer_id,
        occurred_at=shanghai(entry.occurred_at) or "",
        kind=entry.kind,  # type: ignore[arg-type]
        type=entry.type,
        summary=entry.summary,
        source_event_id=entry.source_event_id,
    )


@billing_router.get(
    "/timeline",
    summary="The customer's interactions, newest first (客户接触历史)",
    response_model=list[TimelineEntryOut],
    responses=PROBLEMS,
)
async def get_timeline(
    customer_id: ExistingCustomer,
    session: DbSession,
    kind: Annotated[TimelineKind | None, Query(description="Only this kind of interaction")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await domain.timeline(session, customer_id, kind, offset, limit)
    items = [timeline_out(e).model_dump(mode="json") for e in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})
