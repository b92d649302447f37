"""Dispatch (下发): a running campaign's treatment customers contacted through channel adapters under the contact
policy, in batches of one transaction each.

Each treatment customer gets one contact row per campaign: sent (on the first of the campaign's channels the policy
allows), deferred (quiet hours: it goes at the window's end), or suppressed with the policy's reason. A customer
also in the treatment group of a running campaign of higher priority is left to it (outranked), so overlapping
campaigns do not pile up on one person. The rows make a run resumable and idempotent: a run that stops half-way
picks up the customers without a row (and the deferred ones now due), and a second run sends nobody twice. A run
sends at most `rate_per_second` contacts a second, so a channel gateway is never flooded."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign import events
from crm_campaign.domain import campaigns
from crm_campaign.domain.policy import (
    CAP_WINDOW,
    CustomerFacts,
    PlannedContact,
    PolicySettings,
    Suppression,
    check,
    purpose_for,
)
from crm_campaign.domain.policy import next_allowed as quiet_until
from crm_campaign.models import Assignment, Campaign, Complaint, Consent, Contact, Customer, Offer, OutboundMessage
from crm_kit.db import Database
from crm_kit.events import Contracts
from crm_kit.outbox import stage

SENT, DEFERRED, SUPPRESSED = "sent", "deferred", "suppressed"


@dataclass(frozen=True)
class Message:
    """What goes to one customer on one channel."""

    contact_id: str
    campaign: Campaign
    customer_id: str
    channel: str
    offer: Offer | None
    at: datetime

    @property
    def text(self) -> str:
        offer = f": {self.offer.name}" if self.offer else ""
        return f"【{self.campaign.name}】{offer}"[:1000]


class ChannelAdapter(Protocol):
    """A channel's way out (短信平台, 外呼系统, app push…). Called inside the dispatch transaction: what it records
    commits with the contact, or not at all."""

    async def deliver(self, session: AsyncSession, message: Message) -> None: ...


class OutboxChannel:
    """The default adapter: the message is written to `outbound_message` for the channel's gateway to collect, and
    `campaign.contact.sent.v1` is staged on the outbox (the campaign.contact topic)."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts

    async def deliver(self, session: AsyncSession, message: Message) -> None:
        session.add(
            OutboundMessage(
                contact_id=message.contact_id,
                channel=message.channel,
                customer_id=message.customer_id,
                campaign_id=message.campaign.id,
                offer_code=message.offer.code if message.offer else None,
                text=message.text,
                created_at=message.at,
            )
        )
        await stage(session, self.contracts, [events.contact_sent(message)])


@dataclass
class DispatchResult:
    sent: int = 0
    deferred: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)

    def count(self, contact: Contact) -> None:
        if contact.status == SENT:
            self.sent += 1
        elif contact.status == DEFERRED:
            self.deferred += 1
        else:
            self.suppressed[contact.reason or ""] = self.suppressed.get(contact.reason or "", 0) + 1


async def _due(session: AsyncSession, campaign_id: str, now: datetime, limit: int) -> list[str]:
    """Treatment customers without a contact yet, then deferred ones now due; by customer id."""
    fresh = (
        select(Assignment.customer_id)
        .outerjoin(
            Contact, and_(Contact.campaign_id == Assignment.campaign_id, Contact.customer_id == Assignment.customer_id)
        )
        .where(
            Assignment.campaign_id == campaign_id,
            Assignment.group == campaigns.TREATMENT,
            or_(Contact.id.is_(None), and_(Contact.status == DEFERRED, Contact.not_before <= now)),
        )
        .order_by(Assignment.customer_id)
        .limit(limit)
    )
    return list(await session.scalars(fresh))


async def _facts(session: AsyncSession, ids: Sequence[str], now: datetime) -> dict[str, CustomerFacts]:
    """What the policy needs of each customer, in four reads for the whole batch."""
    consents: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    for c in await session.scalars(select(Consent).where(Consent.customer_id.in_(ids))):
        consents[c.customer_id][(c.channel, c.purpose)] = c.granted
    complaints = dict(
        (
            await session.execute(
                select(Complaint.customer_id, func.count())
                .where(Complaint.customer_id.in_(ids), Complaint.open)
                .group_by(Complaint.customer_id)
            )
        ).all()
    )
    recent: dict[str, list[datetime]] = defaultdict(list)
    for cid, sent_at in await session.execute(
        select(Contact.customer_id, Contact.sent_at).where(
            Contact.customer_id.in_(ids),
            Contact.purpose == "marketing",
            Contact.status == SENT,
            Contact.sent_at > now - CAP_WINDOW,
        )
    ):
        recent[cid].append(sent_at)
    facts = {}
    for row in await session.scalars(select(Customer).where(Customer.customer_id.in_(ids))):
        facts[row.customer_id] = CustomerFacts(
            customer_id=row.customer_id,
            consents=consents[row.customer_id],
            dnd_enabled=row.dnd_enabled,
            dnd_until=row.dnd_until,
            open_complaints=complaints.get(row.customer_id, 0),
            recent_contacts=recent[row.customer_id],
            erased=row.erased_at is not None or row.merged_into is not None,
        )
    return facts


async def _outranked(session: AsyncSession, campaign: Campaign, ids: Sequence[str], now: datetime) -> set[str]:
    """Customers in the treatment group of a running campaign of higher priority whose window holds `now`."""
    rows = await session.scalars(
        select(Assignment.customer_id)
        .join(Campaign, Campaign.id == Assignment.campaign_id)
        .where(
            Assignment.customer_id.in_(ids),
            Assignment.group == campaigns.TREATMENT,
            Campaign.id != campaign.id,
            Campaign.status == campaigns.RUNNING,
            Campaign.priority > campaign.priority,
            Campaign.starts_at <= now,
            Campaign.ends_at > now,
        )
    )
    return set(rows)


REASON_ORDER = list(Suppression)


def _judge(campaign: Campaign, facts: CustomerFacts, settings: PolicySettings, now: datetime) -> tuple[str, str | None]:
    """(channel, None) for the first channel the policy allows; else the refusal that got furthest through the
    policy's rules (the first channel's on a tie): a customer never asked about calls but on do-not-disturb for
    texts is reported as do-not-disturb, and quiet hours (the contact waits) beat any reason judged before them."""
    purpose = purpose_for(campaign.objective)
    refusals = []
    for channel in campaign.channels:
        reason = check(PlannedContact(campaign.id, channel, purpose, now), facts, settings)
        if reason is None:
            return channel, None
        refusals.append((channel, reason))
    return max(refusals, key=lambda refusal: REASON_ORDER.index(refusal[1]))


async def dispatch_batch(
    session: AsyncSession,
    campaign: Campaign,
    adapter: ChannelAdapter,
    settings: PolicySettings,
    now: datetime,
    limit: int,
) -> DispatchResult:
    """One batch of the campaign's due customers, in the caller's transaction."""
    result = DispatchResult()
    ids = await _due(session, campaign.id, now, limit)
    if not ids:
        return result
    facts = await _facts(session, ids, now)
    outranked = await _outranked(session, campaign, ids, now)
    offers = await campaigns.offers_of(session, campaign.id)
    offer = offers[0] if offers else None
    existing = {
        c.customer_id: c
        for c in await session.scalars(
            select(Contact).where(Contact.campaign_id == campaign.id, Contact.customer_id.in_(ids))
        )
    }
    for cid in ids:
        contact = existing.get(cid)
        if contact is None:
            contact = Contact(
                id=campaigns.new_id("CT"),
                campaign_id=campaign.id,
                customer_id=cid,
                offer_id=offer.id if offer else None,
                purpose=purpose_for(campaign.objective),
                planned_at=now,
            )
            session.add(contact)
        customer = facts.get(cid, CustomerFacts(customer_id=cid, erased=True))
        channel, reason = (
            (campaign.channels[0], Suppression.OUTRANKED)
            if cid in outranked
            else _judge(campaign, customer, settings, now)
        )
        contact.channel, contact.reason = channel, reason
        if reason is None:
            contact.status, contact.sent_at, contact.not_before = SENT, now, None
            await session.flush()
            await adapter.deliver(session, Message(contact.id, campaign, cid, channel, offer, now))
        elif reason == Suppression.QUIET_HOURS:
            contact.status, contact.not_before = DEFERRED, quiet_until(now, settings)
        else:
            contact.status, contact.not_before = SUPPRESSED, None
        result.count(contact)
    return result


async def dispatch(
    db: Database,
    campaign_id: str,
    adapter: ChannelAdapter,
    settings: PolicySettings,
    now: datetime,
    *,
    batch_size: int = 1000,
    rate_per_second: float | None = None,
) -> DispatchResult:
    """Every due customer of a running campaign whose window holds `now`, batch by batch (one transaction each)."""
    total = DispatchResult()
    started = time.monotonic()
    while True:
        async with db.sessions.begin() as session:
            campaign = await campaigns.get(session, campaign_id)
            if campaign.status != campaigns.RUNNING or not campaign.starts_at <= now < campaign.ends_at:
                return total
            done = await dispatch_batch(session, campaign, adapter, settings, now, batch_size)
        total.sent += done.sent
        total.deferred += done.deferred
        for reason, n in done.suppressed.items():
            total.suppressed[reason] = total.suppressed.get(reason, 0) + n
        handled = done.sent + done.deferred + sum(done.suppressed.values())
        if handled < batch_size:
            return total
        if rate_per_second:
            ahead = total.sent / rate_per_second - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def run_due(
    db: Database,
    adapter: ChannelAdapter,
    settings: PolicySettings,
    now: datetime,
    *,
    batch_size: int = 1000,
    rate_per_second: float | None = None,
) -> None:
    """The campaign calendar's tick: scheduled campaigns whose start has come are launched, running ones past
    their end completed, and the running ones dispatched, highest priority first (so it claims the shared customers'
    weekly contacts before the others)."""
    async with db.sessions.begin() as session:
        due = await session.scalars(
            select(Campaign).where(Campaign.status == campaigns.SCHEDULED, Campaign.starts_at <= now)
        )
        for campaign in due:
            if now < campaign.ends_at:
                await campaigns.launch(session, campaign, now)
            else:
                campaigns.cancel(campaign, "its window ended before it was launched", now)
        for campaign in await session.scalars(
            select(Campaign).where(Campaign.status == campaigns.RUNNING, Campaign.ends_at <= now)
        ):
            campaigns.complete(campaign, now)
        running = list(
            await session.scalars(
                select(Campaign.id)
                .where(Campaign.status == campaigns.RUNNING)
                .order_by(Campaign.priority.desc(), Campaign.starts_at, Campaign.id)
            )
        )
    for campaign_id in running:
        await dispatch(db, campaign_id, adapter, settings, now, batch_size=batch_size, rate_per_second=rate_per_second)
