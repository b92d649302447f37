"""The campaign service's view of customers, kept from events (客户视图): profile, tiers, segment membership, risk
bands, consents, do-not-disturb and open complaints — what audiences select on and the contact policy checks.

Each event sets what it knows and leaves the rest; a customer first heard of in any event gets a row. Erased and
merged customers keep a row that says so, and are never selected again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.domain import triggers
from crm_campaign.models import Complaint, Consent, Customer, SegmentMember
from crm_kit.events import parse_rfc3339

PROFILE_CREATED = "customer.profile.created.v1"
PROFILE_UPDATED = "customer.profile.updated.v1"
PROFILE_ERASED = "customer.profile.erased.v1"
PROFILE_MERGED = "customer.profile.merged.v1"
CONSENT_CHANGED = "customer.profile.consent_changed.v1"
DND_CHANGED = "customer.profile.dnd_changed.v1"
MEMBERSHIP_CHANGED = "customer.segment.membership_changed.v1"
TIER_CHANGED = "customer.segment.tier_changed.v1"
SCORE_COMPUTED = "churn.score.computed.v1"
TICKET_CREATED = "ticketing.ticket.created.v1"
TICKET_STATE_CHANGED = "ticketing.ticket.state_changed.v1"
TICKET_RESOLVED = "ticketing.ticket.resolved.v1"
TICKET_CLOSED = "ticketing.ticket.closed.v1"

TIER_COLUMNS = {"value": "value_tier", "activity": "activity_tier", "lifecycle": "lifecycle_stage"}
OPEN_TICKET_STATES = ("acknowledged", "inProgress", "pending", "held")
"""TMF621 states of a ticket not yet resolved; a resolved ticket moved back to one of them is reopened (重开)."""


async def customer(session: AsyncSession, customer_id: str, at: datetime) -> Customer:
    """The customer's row, made on the first word of it."""
    row = await session.get(Customer, customer_id)
    if row is None:
        row = Customer(customer_id=customer_id, dnd_enabled=False, updated_at=at)
        session.add(row)
    return row


def _at(data: Mapping[str, Any], *keys: str) -> datetime:
    for key in keys:
        if data.get(key):
            return parse_rfc3339(data[key])
    raise KeyError(keys[0])


async def _profile(session: AsyncSession, data: Mapping[str, Any]) -> None:
    at = _at(data, "updated_at", "created_at")
    row = await customer(session, data["customer_id"], at)
    for key in ("customer_type", "region", "status", "active_lines"):
        if data.get(key) is not None:
            setattr(row, key, data[key])
    row.updated_at = max(row.updated_at, at)


async def _erased(session: AsyncSession, data: Mapping[str, Any]) -> None:
    """Nothing of the person is kept but the fact that they may not be contacted."""
    cid, at = data["customer_id"], _at(data, "erased_at")
    row = await customer(session, cid, at)
    row.erased_at, row.region, row.customer_type, row.updated_at = at, None, None, at
    await session.execute(delete(Consent).where(Consent.customer_id == cid))
    await session.execute(delete(SegmentMember).where(SegmentMember.customer_id == cid))
    await session.execute(delete(Complaint).where(Complaint.customer_id == cid))


async def _merged(session: AsyncSession, data: Mapping[str, Any]) -> None:
    """The duplicate leaves every audience; its complaints follow the survivor."""
    merged, survivor, at = data["merged_id"], data["survivor_id"], _at(data, "merged_at")
    row = await customer(session, merged, at)
    row.merged_into, row.updated_at = survivor, at
    await customer(session, survivor, at)
    await session.execute(delete(SegmentMember).where(SegmentMember.customer_id == merged))
    await session.execute(update(Complaint).where(Complaint.customer_id == merged).values(customer_id=survivor))


async def _consent(session: AsyncSession, data: Mapping[str, Any]) -> None:
    cid, at = data["customer_id"], _at(data, "recorded_at")
    await customer(session, cid, at)
    key = (cid, data["channel"], data["purpose"])
    row = await session.get(Consent, key)
    if row is None:
        session.add(Consent(customer_id=cid, channel=key[1], purpose=key[2], granted=data["granted"], recorded_at=at))
    elif at >= row.recorded_at:
        row.granted, row.recorded_at = data["granted"], at
    dnd = data.get("do_not_disturb")
    if dnd is not None:
        await _set_dnd(session, cid, dnd["enabled"], dnd.get("until"), at)


async def _dnd(session: AsyncSession, data: Mapping[str, Any]) -> None:
    await _set_dnd(session, data["customer_id"], data["enabled"], data.get("until"), _at(data, "recorded_at"))


async def _set_dnd(session: AsyncSession, cid: str, enabled: bool, until: str | None, at: datetime) -> None:
    row = await customer(session, cid, at)
    row.dnd_enabled = enabled
    row.dnd_until = parse_rfc3339(until) if enabled and until else None
    row.updated_at = max(row.updated_at, at)


async def _membership(session: AsyncSession, data: Mapping[str, Any]) -> None:
    cid, sid, at = data["customer_id"], data["segment_id"], _at(data, "occurred_at")
    await customer(session, cid, at)
    member = await session.get(SegmentMember, (sid, cid))
    if data["change"] == "joined" and member is None:
        session.add(SegmentMember(segment_id=sid, customer_id=cid, segment_name=data["segment_name"], joined_at=at))
    elif data["change"] == "left" and member is not None:
        await session.delete(member)


async def _tier(session: AsyncSession, data: Mapping[str, Any]) -> None:
    row = await customer(session, data["customer_id"], _at(data, "occurred_at"))
    column = TIER_COLUMNS.get(data["dimension"])
    if column is not None:
        setattr(row, column, data["to"])


async def _score(session: AsyncSession, data: Mapping[str, Any]) -> None:
    at = _at(data, "occurred_at")
    row = await customer(session, data["customer_id"], at)
    score = Decimal(str(data["score"]))
    if data["model_kind"] == "churn":
        before = row.churn_band
        row.churn_score, row.churn_band = score, data["risk_band"]
        await triggers.on_churn_band(session, row, before, at)
    else:
        row.bad_debt_score, row.bad_debt_band = score, data["risk_band"]


async def _ticket(session: AsyncSession, event_type: str, data: Mapping[str, Any]) -> None:
    """Complaints only: opened, reopened (state back to open), resolved or closed."""
    at = _at(data, "occurred_at")
    row = await session.get(Complaint, data["ticket_id"])
    if event_type == TICKET_CREATED:
        if data["ticket_type"] != "complaint" or row is not None:
            return
        await customer(session, data["customer_id"], at)
        session.add(Complaint(ticket_id=data["ticket_id"], customer_id=data["customer_id"], open=True, updated_at=at))
        return
    if row is None or at < row.updated_at:
        return
    if event_type == TICKET_STATE_CHANGED:
        row.open = data["to_state"] in OPEN_TICKET_STATES
    else:
        row.open = False
    row.updated_at = at


Apply = Callable[[AsyncSession, Mapping[str, Any]], Awaitable[None]]
APPLY: dict[str, Apply] = {
    PROFILE_CREATED: _profile,
    PROFILE_UPDATED: _profile,
    PROFILE_ERASED: _erased,
    PROFILE_MERGED: _merged,
    CONSENT_CHANGED: _consent,
    DND_CHANGED: _dnd,
    MEMBERSHIP_CHANGED: _membership,
    TIER_CHANGED: _tier,
    SCORE_COMPUTED: _score,
}
TICKET_EVENTS = (TICKET_CREATED, TICKET_STATE_CHANGED, TICKET_RESOLVED, TICKET_CLOSED)
CONSUMED = (*APPLY, *TICKET_EVENTS)


async def apply(session: AsyncSession, event_type: str, data: Mapping[str, Any]) -> None:
    if event_type in TICKET_EVENTS:
        await _ticket(session, event_type, data)
    else:
        await APPLY[event_type](session, data)
