"""One customer's campaign contacts (营销触达), newest first: what an agent on the phone, or the 360 view, needs to
know about the campaigns that reached (or were held back from) this customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import and_, func, select

from crm_campaign.api.access import ContactReader
from crm_campaign.domain.attribution import ACCEPTED
from crm_campaign.models import Campaign, Contact, Offer, Response
from crm_campaign.schemas import CustomerContactOut
from crm_kit.presentation import JSONResponse, shanghai
from crm_kit.service import DbSession

router = APIRouter(prefix="/campaign/v1", tags=["Customer contacts"], responses={401: {}, 403: {}})
CustomerId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The BOSS customer id")]


@router.get(
    "/customers/{customer_id}/contacts",
    summary="The customer's campaign contacts, newest first (客户营销触达记录)",
    response_model=list[CustomerContactOut],
    responses={422: {}},
)
async def customer_contacts(
    customer_id: CustomerId,
    session: DbSession,
    _: ContactReader,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    """A customer the campaigns never reached has none (an empty list, not a 404: this service learns customers only
    from the events it needs). Sent contacts count by when they went, the others by when they were planned."""
    moment = func.coalesce(Contact.sent_at, Contact.planned_at)
    total = await session.scalar(select(func.count()).select_from(Contact).where(Contact.customer_id == customer_id))
    rows = await session.execute(
        select(Contact, Campaign.name, Campaign.objective, Offer.code, Offer.name, Response.occurred_at)
        .join(Campaign, Campaign.id == Contact.campaign_id)
        .outerjoin(Offer, Offer.id == Contact.offer_id)
        .outerjoin(
            Response,
            and_(
                Response.campaign_id == Contact.campaign_id,
                Response.customer_id == Contact.customer_id,
                Response.kind == ACCEPTED,
            ),
        )
        .where(Contact.customer_id == customer_id)
        .order_by(moment.desc(), Contact.id.desc())
        .offset(offset)
        .limit(limit)
    )
    items = [
        CustomerContactOut(
            contact_id=c.id,
            campaign_id=c.campaign_id,
            campaign_name=name,
            objective=objective,
            purpose=c.purpose,  # type: ignore[arg-type]
            channel=c.channel,
            status=c.status,  # type: ignore[arg-type]
            reason=c.reason,
            offer_code=offer_code,
            offer_name=offer_name,
            planned_at=shanghai(c.planned_at) or "",
            sent_at=shanghai(c.sent_at),
            not_before=shanghai(c.not_before),
            delivery=c.delivery,  # type: ignore[arg-type]
            delivery_at=shanghai(c.delivery_at),
            responded_at=shanghai(responded_at),
        ).model_dump(mode="json")
        for c, name, objective, offer_code, offer_name, responded_at in rows.all()
    ]
    return JSONResponse(items, headers={"X-Total-Count": str(total or 0), "X-Result-Count": str(len(items))})
