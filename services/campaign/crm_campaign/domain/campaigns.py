"""A campaign's life (活动生命周期): draft → scheduled → running → completed, or cancelled before it ends.

A draft may change freely. Scheduling checks that it can run: an audience that holds someone, at least one offer
(a care campaign may go without), a window that ends after it starts and has not ended, and no overlap with a
campaign of the same priority aimed at any of the same segments at the same time (which of the two would win a
customer they share would be chance). Launching assigns the audience to treatment and control, once."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import audiences, control
from crm_campaign.models import Assignment, Campaign, Offer
from crm_kit.db import insert_many
from crm_kit.errors import Conflict, InvalidInput, NotFound

DRAFT, SCHEDULED, RUNNING, COMPLETED, CANCELLED = "draft", "scheduled", "running", "completed", "cancelled"
LIVE = (SCHEDULED, RUNNING)
TREATMENT, CONTROL = "treatment", "control"
LAUNCH_CHUNK = 50_000
"""Assignments written per statement: a million-customer launch stays well inside the statement timeout."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


async def get(session: AsyncSession, campaign_id: str) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}", field="campaign_id")
    return campaign


async def offers_of(session: AsyncSession, campaign_id: str) -> list[Offer]:
    return list(await session.scalars(select(Offer).where(Offer.campaign_id == campaign_id).order_by(Offer.code)))


async def check_name_free(session: AsyncSession, name: str) -> None:
    found = await session.scalar(select(Campaign.id).where(Campaign.name == name))
    if found is not None:
        raise Conflict(f"A campaign named {name!r} exists ({found})", field="name")


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("ends_at: the campaign must end after it starts", field="ends_at")


def _must_be(campaign: Campaign, *statuses: str, to: str) -> None:
    if campaign.status not in statuses:
        raise Conflict(
            f"Campaign {campaign.id} is {campaign.status}: only a {' or '.join(statuses)} campaign can be {to}",
            field="status",
        )


async def _overlapping(session: AsyncSession, campaign: Campaign, audience: audiences.Audience) -> Campaign | None:
    """A live campaign of the same priority whose window meets this one's and whose segments meet its segments."""
    if not audience.segments:
        return None
    rivals = await session.scalars(
        select(Campaign).where(
            Campaign.id != campaign.id,
            Campaign.status.in_(LIVE),
            Campaign.priority == campaign.priority,
            Campaign.starts_at < campaign.ends_at,
            Campaign.ends_at > campaign.starts_at,
        )
    )
    for rival in rivals:
        if set(audience.segments) & set(rival.audience.get("segments") or []):
            return rival
    return None


async def schedule(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    _must_be(campaign, DRAFT, to="scheduled")
    audience = audiences.parse(campaign.audience)
    triggered = campaign.trigger is not None
    if audience.empty and not triggered:
        raise InvalidInput("audience: a campaign needs segments, a rule or a trigger to be scheduled", field="audience")
    if campaign.objective != "care" and not await offers_of(session, campaign.id):
        raise InvalidInput(f"offers: a {campaign.objective} campaign needs at least one offer", field="offers")
    if campaign.ends_at <= now:
        raise InvalidInput("ends_at: the campaign's window has already ended", field="ends_at")
    if not triggered and not await audiences.count(session, audience, now):
        raise InvalidInput("audience: it holds no customer now", field="audience")
    rival = await _overlapping(session, campaign, audience)
    if rival is not None:
        raise Conflict(
            f"Campaign {rival.id} ({rival.name}) aims at the same segments in an overlapping window with the same "
            f"priority {campaign.priority}: give one a higher priority or move its window",
            field="priority",
        )
    campaign.status, campaign.scheduled_at, campaign.updated_at = SCHEDULED, now, now


async def launch(session: AsyncSession, campaign: Campaign, now: datetime) -> None:
    """Start it: its audience as of now split into treatment and control (对照组), each customer in one group for
    good; a triggered campaign starts empty and takes customers in as its trigger fires."""
    _must_be(campaign, SCHEDULED, to="launched")
    if now < campaign.starts_at:
        raise Conflict(f"Campaign {campaign.id} starts at {campaign.starts_at.isoformat()}", field="starts_at")
    if campaign.trigger is not None:
        campaign.status, campaign.launched_at, campaign.updated_at = RUNNING, now, now
        return
    audience = audiences.parse(campaign.audience)
    ids = list(await session.scalars(audiences.members(audience, now)))
    treatment, held_out = control.assign(campaign.holdout_key, ids, Decimal(campaign.holdout_share))
    rows = [(cid, TREATMENT) for cid in treatment]
    rows += [(cid, CONTROL) for cid in held_out]
    same = {"campaign_id": campaign.id, "assigned_at": now}
    for start in range(0, len(rows), LAUNCH_CHUNK):
        chunk = rows[start : start + LAUNCH_CHUNK]
        await insert_many(session, Assignment.__table__, ("customer_id", "group"), chunk, same=same)
    campaign.status, campaign.launched_at, campaign.updated_at = RUNNING, now, now


def complete(campaign: Campaign, now: datetime) -> None:
    _must_be(campaign, RUNNING, to="completed")
    campaign.status, campaign.finished_at, campaign.updated_at = COMPLETED, now, now


def cancel(campaign: Campaign, reason: str, now: datetime) -> None:
    _must_be(campaign, DRAFT, SCHEDULED, RUNNING, to="cancelled")
    campaign.status, campaign.finished_at, campaign.cancel_reason, campaign.updated_at = CANCELLED, now, reason, now
