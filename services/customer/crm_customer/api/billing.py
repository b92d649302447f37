"""A customer's billing summary, usage summary and interaction timeline (/api/v1/customers/{id}/...)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from crm_customer.api.access import ExistingCustomer
from crm_customer.api.consents import CONSENTS_BASE, PROBLEMS
from crm_customer.domain import billing, timeline
from crm_customer.models import (
    AccountStanding,
    BillingPayment,
    TimelineEntry,
)
from crm_customer.schemas.billing import (
    AccountStandingOut,
    Amount,
    BillingSummaryOut,
    LastPaymentOut,
    MonthSpendOut,
    PaymentBehaviourOut,
    TimelineEntryOut,
    TimelineKind,
    UsageSummaryOut,
)
from crm_kit.presentation import JSONResponse, shanghai, yuan
from crm_kit.service import DbSession

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
    s = await billing.billing_summary(session, customer_id)
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
        collection_status=billing.worst_collection_status([a.collection_status for a in s.accounts]),
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
    a = await billing.usage_summary(session, customer_id, as_of or billing.shanghai_today())
    return UsageSummaryOut(
        customer_id=customer_id,
        from_date=a.first_day.isoformat(),
        to_date=a.last_day.isoformat(),
        days=billing.ACTIVITY_DAYS,
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
    total, page = await timeline.timeline(session, customer_id, kind, offset, limit)
    items = [timeline_out(e).model_dump(mode="json") for e in page]
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})
