"""Delivery receipts (状态报告) from the channel gateways."""

from __future__ import annotations

from fastapi import APIRouter

from crm_campaign.api.access import Gateway
from crm_campaign.domain import deliveries
from crm_campaign.schemas import DeliveriesIn, DeliveriesOut
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession

router = APIRouter(prefix="/campaign/v1", tags=["Deliveries"], responses={401: {}, 403: {}})


@router.post(
    "/deliveries",
    summary="What became of sent contacts: delivered, or failed with the channel's reason (up to 1,000 at once)",
    response_model=DeliveriesOut,
    responses={422: {"description": "a receipt names a contact that was not sent; nothing is recorded"}},
)
async def report_deliveries(body: DeliveriesIn, session: DbSession, _: Gateway) -> JSONResponse:
    receipts = [deliveries.Receipt(r.contact_id, r.status, r.at, r.error) for r in body.receipts]
    done = await deliveries.record(session, receipts)
    return JSONResponse(DeliveriesOut(recorded=done.recorded, unchanged=done.unchanged).model_dump(mode="json"))
