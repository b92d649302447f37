"""The 360° customer view (客户360视图) and the lists behind it: tickets, risk scores, campaign contacts
(/api/v1/customers/{id}/view360, /tickets, /risk-scores, /campaign-contacts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from crm_customer.api.access import ExistingCustomer, Reader, check_visible
from crm_customer.api.billing import amount, timeline_out
from crm_customer.domain import billing, projections
from crm_customer.domain.view360 import load_view
from crm_customer.models import CampaignContactView, RiskScore, TicketView
from crm_customer.schemas.billing import Amount, MonthSpendOut, UsageSummaryOut
from crm_customer.schemas.view360 import (
    AccountOut,
    BillingOut,
    CampaignContactOut,
    LineOut,
    ProfileOut,
    ReasonOut,
    RiskOut,
    RiskScoreOut,
    SegmentRefOut,
    TicketOut,
    TicketsOut,
    TiersOut,
    View360Out,
)
from crm_kit.db import utcnow
from crm_kit.errors import NotFound
from crm_kit.presentation import JSONResponse, mask_id_card, mask_msisdn, shanghai, yuan
from crm_kit.service import DbSession

router = APIRouter(prefix="/api/v1/customers", tags=["360 view"])
PROBLEMS: dict[int | str, dict[str, Any]] = {404: {}, 422: {}}
PII_FIELDS = "msisdn,id_card_no"
TOP_REASONS = 3


def _money(fen: int) -> Amount:
    return Amount(fen=fen, yuan=yuan(fen))


def ticket_out(ticket: TicketView) -> TicketOut:
    breached = (
        ticket.state in projections.OPEN_STATES and ticket.sla_due_at is not None and ticket.sla_due_at < utcnow()
    )
    return TicketOut(
        ticket_id=ticket.ticket_id,
        ticket_type=ticket.ticket_type,
        category=ticket.category,
        title=ticket.title,
        priority=ticket.priority,
        state=ticket.state,
        opened_at=shanghai(ticket.opened_at),
        sla_due_at=shanghai(ticket.sla_due_at),
        sla_breached=breached,
        resolved_at=shanghai(ticket.resolved_at),
        csat_score=ticket.csat_score,
    )


def risk_out(score: RiskScore | None, reasons: int | None = TOP_REASONS) -> RiskScoreOut | None:
    if score is None:
        return None
    shown = projections.top_reasons(score.reasons, reasons) if reasons else score.reasons
    return RiskScoreOut(
        model_kind=score.model_kind,  # type: ignore[arg-type]
        score=f"{score.score:.4f}",
        risk_band=score.risk_band,  # type: ignore[arg-type]
        model_version=score.model_version,
        scored_at=shanghai(score.scored_at) or "",
        top_reasons=[ReasonOut.model_validate(r) for r in shown],
    )


def contact_out(contact: CampaignContactView) -> CampaignContactOut:
    return CampaignContactOut(
        contact_id=contact.contact_id,
        campaign_id=contact.campaign_id,
        campaign_name=contact.campaign_name,
        channel=contact.channel,
        offer_code=contact.offer_code,
        offer_name=contact.offer_name,
        status=contact.status,
        response=contact.response,
        contacted_at=shanghai(contact.contacted_at) or "",
        responded_at=shanghai(contact.responded_at),
    )


@router.get(
    "/{customer_id}/view360",
    summary="Everything about one customer on one page (客户360视图)",
    response_model=View360Out,
    responses=PROBLEMS,
)
async def get_view360(
    customer_id: Annotated[str, Path(max_length=64)],
    access: Reader,
    timeline_limit: Annotated[int, Query(ge=1, le=100, description="Timeline rows on the page")] = 20,
) -> JSONResponse:
    """Profile, accounts, lines, tiers, segments, billing, usage, tickets, risk, campaign contacts and the
    latest interactions, read in one statement; every part is by customer id on an index. No request
    transaction: the audit row, written only when personal data is shown unmasked, has one of its own."""
    view = await load_view(access.db, customer_id, billing.shanghai_today(), timeline_limit)
    if view is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    customer, metrics, bill, usage = view.customer, view.metrics, view.billing, view.usage
    await check_visible(access.db, access.principal, customer)
    reveal = access.reveal_pii
    await access.audit([customer_id], PII_FIELDS)

    page = View360Out(
        customer_id=customer_id,
        profile=ProfileOut(
            id=customer.id,
            name=customer.name,
            customer_type=customer.customer_type,
            status=customer.status,
            region=customer.region,
            created_at=shanghai(customer.created_at) or "",
            id_card_no=customer.id_card_no if reveal else mask_id_card(customer.id_card_no),
            key_account=bool(customer.key_account),
            key_account_tier=customer.key_account_tier,
            account_manager=customer.account_manager,
        ),
        accounts=[
            AccountOut(id=a.id, name=a.name, account_type=a.account_type, parent_id=a.parent_id, status=a.status)
            for a in view.accounts
        ],
        lines=[
            LineOut(
                id=line.id,
                msisdn=line.msisdn if reveal else mask_msisdn(line.msisdn),
                account_id=line.account_id,
                status=line.status,
                plan_code=line.plan_code,
                plan_name=line.plan_name,
                monthly_fee=amount(line.monthly_fee_fen),
                payment_mode=line.payment_mode,
                activated_at=shanghai(line.activated_at),
                contract_end=line.contract_end.isoformat() if line.contract_end else None,
            )
            for line in view.lines
        ],
        tiers=TiersOut(
            value_tier=metrics.value_tier if metrics else None,
            activity_tier=metrics.activity_tier if metrics else None,
            lifecycle_stage=metrics.lifecycle_stage if metrics else None,
        ),
        segments=[SegmentRefOut(id=s.id, name=s.name) for s in view.segments],
        billing=BillingOut(
            arpu=amount(bill.arpu_fen),
            spend_trend=[
                MonthSpendOut(billing_period=m.billing_period, amount_due=_money(m.amount_due_fen), invoices=m.invoices)
                for m in bill.trend
            ],
            payment_status=bill.payment_status,  # type: ignore[arg-type]
            outstanding=_money(bill.outstanding_fen),
            overdue_invoices=bill.overdue_invoices,
        ),
        usage_30d=UsageSummaryOut(
            customer_id=customer_id,
            from_date=usage.first_day.isoformat(),
            to_date=usage.last_day.isoformat(),
            days=billing.ACTIVITY_DAYS,
            voice_minutes=usage.voice_minutes,
            sms_count=usage.sms_count,
            data_mb=usage.data_mb,
            roaming_voice_minutes=usage.roaming_voice_minutes,
            roaming_data_mb=usage.roaming_data_mb,
            days_active=usage.days_active,
            roaming_days=usage.roaming_days,
            active_lines=usage.lines,
        ),
        tickets=TicketsOut(
            open_count=view.open_tickets,
            open=[ticket_out(t) for t in view.tickets],
            last_csat=metrics.last_csat if metrics else None,
        ),
        risk=RiskOut(churn=risk_out(view.scores.get("churn")), bad_debt=risk_out(view.scores.get("bad_debt"))),
        campaign_contacts=[contact_out(c) for c in view.contacts],
        timeline=[timeline_out(e) for e in view.timeline],
        timeline_next_offset=timeline_limit if view.more_timeline else None,
    )
    return JSONResponse(page.model_dump(mode="json"), headers=access.headers)


def _page(items: list[Any], total: int) -> JSONResponse:
    return JSONResponse(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


@router.get(
    "/{customer_id}/tickets",
    summary="The customer's tickets (工单), newest first",
    response_model=list[TicketOut],
    responses=PROBLEMS,
)
async def list_tickets(
    customer_id: ExistingCustomer,
    session: DbSession,
    open_only: Annotated[bool, Query(alias="open", description="Only tickets still being worked on")] = False,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await projections.tickets(session, customer_id, open_only=open_only, offset=offset, limit=limit)
    return _page([ticket_out(t).model_dump(mode="json") for t in page], total)


@router.get(
    "/{customer_id}/risk-scores",
    summary="The customer's current churn (离网) and bad-debt (坏账) scores with every reason",
    response_model=list[RiskScoreOut],
    responses=PROBLEMS,
)
async def list_risk_scores(customer_id: ExistingCustomer, session: DbSession) -> JSONResponse:
    scores = await projections.risk_scores(session, customer_id)
    items = [risk_out(scores[kind], reasons=None) for kind in ("churn", "bad_debt") if kind in scores]
    return _page([s.model_dump(mode="json") for s in items if s is not None], len(items))


@router.get(
    "/{customer_id}/campaign-contacts",
    summary="Campaign contacts (营销触达) with the customer and their responses, newest first",
    response_model=list[CampaignContactOut],
    responses=PROBLEMS,
)
async def list_campaign_contacts(
    customer_id: ExistingCustomer,
    session: DbSession,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    total, page = await projections.campaign_contacts(session, customer_id, offset=offset, limit=limit)
    return _page([contact_out(c).model_dump(mode="json") for c in page], total)
