"""Campaigns (营销活动): define a draft with its offers and audience, preview the audience, schedule, launch,
complete or cancel."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from crm_campaign.api.access import Now, Reader, Runner
from crm_campaign.domain import attribution, audiences, campaigns, dispatch, evaluation, report
from crm_campaign.domain.policy import purpose_for
from crm_campaign.models import Assignment, Campaign, Contact, Offer
from crm_campaign.schemas import (
    CampaignIn,
    CampaignOut,
    CancelIn,
    ContactsOut,
    DispatchOut,
    GroupOut,
    OfferOut,
    OfferReportOut,
    PreviewOut,
    ReportOut,
    Status,
    UpliftOut,
)
from crm_campaign.settings import Settings
from crm_kit.errors import Conflict, InvalidInput
from crm_kit.presentation import JSONResponse
from crm_kit.service import DbSession, RuntimeDep

router = APIRouter(prefix="/campaign/v1", tags=["Campaigns"], responses={401: {}, 403: {}})
SHARE_PLACES = Decimal("0.001")
CampaignId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _settings(request: Request) -> Settings:
    return request.app.state.runtime.settings  # type: ignore[no-any-return]


async def _shapes(session: DbSession, listed: Sequence[Campaign]) -> list[CampaignOut]:
    """The campaigns as the API shows them: their offers and group sizes read for all of them at once."""
    ids = [c.id for c in listed]
    groups: dict[tuple[str, str], int] = {
        (campaign_id, group): n
        for campaign_id, group, n in (
            await session.execute(
                select(Assignment.campaign_id, Assignment.group, func.count())
                .where(Assignment.campaign_id.in_(ids))
                .group_by(Assignment.campaign_id, Assignment.group)
            )
        ).all()
    }
    offers: dict[str, list[OfferOut]] = defaultdict(list)
    for o in await session.scalars(select(Offer).where(Offer.campaign_id.in_(ids)).order_by(Offer.code)):
        offers[o.campaign_id].append(
            OfferOut(
                id=o.id,
                code=o.code,
                name=o.name,
                kind=o.kind,  # type: ignore[arg-type]
                cost_fen=o.cost_fen,
                expected_value_fen=o.expected_value_fen,
                plan_code=o.plan_code,
                min_recharge_fen=o.min_recharge_fen,
                addon_code=o.addon_code,
            )
        )
    return [
        CampaignOut(
            id=campaign.id,
            name=campaign.name,
            description=campaign.description,
            objective=campaign.objective,  # type: ignore[arg-type]
            purpose=purpose_for(campaign.objective),  # type: ignore[arg-type]
            status=campaign.status,  # type: ignore[arg-type]
            channels=campaign.channels,  # type: ignore[arg-type]
            audience=campaign.audience,
            trigger=campaign.trigger,
            offers=offers[campaign.id],
            holdout_share=Decimal(campaign.holdout_share).quantize(SHARE_PLACES),
            holdout_key=campaign.holdout_key,
            priority=campaign.priority,
            response_window_days=campaign.response_window_days,
            starts_at=campaign.starts_at,
            ends_at=campaign.ends_at,
            created_by=campaign.created_by,
            created_at=campaign.created_at,
            updated_at=campaign.updated_at,
            scheduled_at=campaign.scheduled_at,
            launched_at=campaign.launched_at,
            finished_at=campaign.finished_at,
            cancel_reason=campaign.cancel_reason,
            treatment=groups.get((campaign.id, campaigns.TREATMENT), 0),
            control=groups.get((campaign.id, campaigns.CONTROL), 0),
        )
        for campaign in listed
    ]


async def _answer(session: DbSession, campaign: Campaign, status_code: int = 200) -> JSONResponse:
    (shaped,) = await _shapes(session, [campaign])
    body = shaped.model_dump(mode="json")
    headers = {"Location": f"/campaign/v1/campaigns/{campaign.id}"} if status_code == 201 else None
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post(
    "/campaigns",
    status_code=201,
    summary="Define a campaign (a draft): objective, channels, offers, audience, window",
    response_model=CampaignOut,
    responses={409: {"description": "the name is taken"}, 422: {}},
)
async def create_campaign(
    body: CampaignIn, session: DbSession, request: Request, now: Now, who: Runner
) -> JSONResponse:
    audience = body.audience.model_dump() if body.audience else {}
    audiences.parse(audience)
    trigger = body.trigger.model_dump() if body.trigger else None
    campaigns.check_window(body.starts_at, body.ends_at)
    await campaigns.check_name_free(session, body.name)
    codes = [o.code for o in body.offers]
    if len(set(codes)) != len(codes):
        raise InvalidInput("offers: each offer of a campaign has its own code", field="offers")
    settings = _settings(request)
    campaign_id = campaigns.new_id("CMP")
    campaign = Campaign(
        id=campaign_id,
        name=body.name,
        description=body.description,
        objective=body.objective,
        status=campaigns.DRAFT,
        channels=list(dict.fromkeys(body.channels)),
        audience=audience,
        trigger=trigger,
        holdout_share=body.holdout_share if body.holdout_share is not None else Decimal(settings.default_holdout),
        holdout_key=body.holdout_key or campaign_id,
        priority=body.priority,
        response_window_days=body.response_window_days or settings.default_response_window_days,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        created_by=who.subject,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    for offer in body.offers:
        session.add(Offer(id=campaigns.new_id("OFR"), campaign_id=campaign.id, **offer.model_dump()))
    await session.flush()
    return await _answer(session, campaign, 201)


@router.get("/campaigns", summary="Campaigns, newest first", response_model=list[CampaignOut], responses={422: {}})
async def list_campaigns(
    session: DbSession,
    _: Reader,
    status: Status | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JSONResponse:
    where = [Campaign.status == status] if status else []
    total = await session.scalar(select(func.count()).select_from(Campaign).where(*where))
    rows = await session.scalars(
        select(Campaign).where(*where).order_by(Campaign.created_at.desc(), Campaign.id).offset(offset).limit(limit)
    )
    body = [c.model_dump(mode="json") for c in await _shapes(session, rows.all())]
    return JSONResponse(body, headers={"X-Total-Count": str(total or 0), "X-Result-Count": str(len(body))})


@router.get("/campaigns/{campaign_id}", summary="One campaign", response_model=CampaignOut, responses={404: {}})
async def get_campaign(campaign_id: CampaignId, session: DbSession, _: Reader) -> JSONResponse:
    return await _answer(session, await campaigns.get(session, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/audience/preview",
    summary="How many customers the audience holds now and how they would split into treatment and control",
    response_model=PreviewOut,
    responses={404: {}, 422: {}},
)
async def preview_audience(campaign_id: CampaignId, session: DbSession, now: Now, _: Runner) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    found = await audiences.preview(
        session, campaign.holdout_key, audiences.parse(campaign.audience), Decimal(campaign.holdout_share), now
    )
    body = PreviewOut(count=found.count, treatment=found.treatment, control=found.control, sample=found.sample)
    return JSONResponse(body.model_dump(mode="json"))


@router.post(
    "/campaigns/{campaign_id}/schedule",
    summary="Check it can run and schedule it (draft → scheduled)",
    response_model=CampaignOut,
    responses={404: {}, 409: {}, 422: {}},
)
async def schedule_campaign(campaign_id: CampaignId, session: DbSession, now: Now, _: Runner) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    await campaigns.schedule(session, campaign, now)
    return await _answer(session, campaign)


@router.post(
    "/campaigns/{campaign_id}/launch",
    summary="Start it: the audience as of now split into treatment and control (scheduled → running)",
    response_model=CampaignOut,
    responses={404: {}, 409: {}},
)
async def launch_campaign(campaign_id: CampaignId, session: DbSession, now: Now, _: Runner) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    await campaigns.launch(session, campaign, now)
    return await _answer(session, campaign)


@router.post(
    "/campaigns/{campaign_id}/complete",
    summary="End a running campaign (running → completed)",
    response_model=CampaignOut,
    responses={404: {}, 409: {}},
)
async def complete_campaign(campaign_id: CampaignId, session: DbSession, now: Now, _: Runner) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    campaigns.complete(campaign, now)
    return await _answer(session, campaign)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    summary="Stop a campaign that has not ended, with the reason",
    response_model=CampaignOut,
    responses={404: {}, 409: {}, 422: {}},
)
async def cancel_campaign(
    campaign_id: CampaignId, body: CancelIn, session: DbSession, now: Now, _: Runner
) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    campaigns.cancel(campaign, body.reason, now)
    return await _answer(session, campaign)


@router.post(
    "/campaigns/{campaign_id}/dispatch",
    summary="Contact the running campaign's due treatment customers now (the calendar also does, every half minute)",
    response_model=DispatchOut,
    responses={404: {}, 409: {}},
)
async def dispatch_now(campaign_id: CampaignId, request: Request, rt: RuntimeDep, now: Now, _: Runner) -> JSONResponse:
    async with rt.db.sessions() as session:
        campaign = await campaigns.get(session, campaign_id)
    if campaign.status != campaigns.RUNNING:
        raise Conflict(
            f"Campaign {campaign_id} is {campaign.status}: only a running campaign dispatches", field="status"
        )
    settings = _settings(request)
    done = await dispatch.dispatch(
        rt.db,
        campaign_id,
        dispatch.OutboxChannel(rt.contracts),
        request.app.state.contact_policy,
        now,
        batch_size=settings.dispatch_batch_size,
        rate_per_second=settings.dispatch_rate_per_second,
    )
    body = DispatchOut(sent=done.sent, deferred=done.deferred, suppressed=done.suppressed)
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/campaigns/{campaign_id}/contacts",
    summary="The campaign's contacts so far: sent by channel, deferred, suppressed by reason",
    response_model=ContactsOut,
    responses={404: {}},
)
async def contacts_of(campaign_id: CampaignId, session: DbSession, _: Reader) -> JSONResponse:
    await campaigns.get(session, campaign_id)
    rows = await session.execute(
        select(Contact.status, Contact.channel, Contact.reason, func.count())
        .where(Contact.campaign_id == campaign_id)
        .group_by(Contact.status, Contact.channel, Contact.reason)
    )
    out = ContactsOut(sent={}, deferred=0, suppressed={})
    for status, channel, reason, n in rows.all():
        if status == dispatch.SENT:
            out.sent[channel] = out.sent.get(channel, 0) + n
        elif status == dispatch.DEFERRED:
            out.deferred += n
        else:
            out.suppressed[reason] = out.suppressed.get(reason, 0) + n
    return JSONResponse(out.model_dump(mode="json"))


def _uplift(u: evaluation.Uplift | None) -> UpliftOut | None:
    return None if u is None else UpliftOut(**dataclasses.asdict(u))


@router.get(
    "/campaigns/{campaign_id}/report",
    summary="Treatment against control: response uplift with its interval and test, revenue, cost, ROI, churn",
    response_model=ReportOut,
    responses={404: {}},
)
async def campaign_report(campaign_id: CampaignId, session: DbSession, _: Reader) -> JSONResponse:
    campaign = await campaigns.get(session, campaign_id)
    found = await attribution.report(session, campaign)
    body = ReportOut(
        campaign_id=campaign.id,
        objective=campaign.objective,  # type: ignore[arg-type]
        treatment=GroupOut(**dataclasses.asdict(found.treatment)),
        control=GroupOut(**dataclasses.asdict(found.control)),
        response=_uplift(found.response),
        retention=_uplift(found.retention),
        incremental_revenue_fen=found.incremental_revenue_fen,
        cost_fen=found.cost_fen,
        roi=found.roi,
        offers=[OfferReportOut(**{**dataclasses.asdict(o), "response": _uplift(o.response)}) for o in found.offers],
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/campaigns/{campaign_id}/report.html",
    summary="The report as a page with its charts (活动效果评估报告): rates by group, the uplift and its interval",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, 404: {}},
)
async def campaign_report_page(campaign_id: CampaignId, session: DbSession, _: Reader) -> HTMLResponse:
    campaign = await campaigns.get(session, campaign_id)
    return HTMLResponse(report.render(campaign, await attribution.report(session, campaign)))
