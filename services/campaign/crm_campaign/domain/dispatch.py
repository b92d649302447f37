"""Dispatch (下发): a running campaign's treatment customers contacted through channel adapters under the contact
policy, in batches of one transaction each.

Each treatment customer gets one contact row per campaign: sent (on the first of the campaign's channels the policy
allows), deferred (quiet hours: it goes at the window's end), or suppressed with the policy's reason. A customer
also in the treatment group of a running campaign of higher priority is left to it (outranked), so overlapping
campaigns do not pile up on one person. The rows make a run resumable and idempotent: a run that stops half-way
picks up the customers without a row (and the deferred ones now due), and a second run sends nobody twice. A run
sends at most `rate_per_second` contacts a second, so a channel gateway is never flooded. One run of a campaign at
a time, in any process: a run holds the campaign's dispatch lease, renewed with every batch, so a marketer's
"dispatch now" and the calendar's tick (or two replicas' ticks) cannot both send a deferred contact.

A run walks the treatment group once in customer-id order, each batch starting past the last customer the one
before judged (keyset), so a million-customer campaign costs each batch the same. A batch reads what the policy
needs in two statements for all its customers, and writes its contacts, messages and events as a few bulk
statements: a contact costs tens of microseconds, not a round trip. The next batch is read and judged while one
is written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import and_, bindparam, false, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_campaign import events
from crm_campaign.domain import campaigns
from crm_campaign.domain.policy import (
    CAP_WINDOW,
    IN_PERSON,
    CustomerFacts,
    PlannedContact,
    PolicySettings,
    Suppression,
    check,
    purpose_for,
)
from crm_campaign.domain.policy import next_allowed as quiet_until
from crm_campaign.models import Assignment, Campaign, Complaint, Consent, Contact, Customer, Offer, OutboundMessage
from crm_kit.db import Database, insert_many, utcnow
from crm_kit.errors import Conflict
from crm_kit.events import Contracts
from crm_kit.outbox import stage_many

log = logging.getLogger(__name__)
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
    """A channel's way out (短信平台, 外呼系统, app push…). Given a batch's messages at once, as gateways take them
    (an SMS platform's batch submit), inside the dispatch transaction: what it records commits with the contacts,
    or not at all."""

    async def deliver(self, session: AsyncSession, messages: Sequence[Message]) -> None: ...


class OutboxChannel:
    """The default adapter: the messages are written to `outbound_message` for the channel's gateway to collect,
    and `campaign.contact.sent.v1` for each is staged on the outbox (the campaign.contact topic), in bulk: the
    messages of one campaign, offer and moment share their text and differ in their event only by contact,
    customer and channel."""

    COLUMNS = ("contact_id", "channel", "customer_id")

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts

    async def deliver(self, session: AsyncSession, messages: Sequence[Message]) -> None:
        together: dict[tuple[str, str | None, datetime], list[Message]] = defaultdict(list)
        for m in messages:
            together[(m.campaign.id, m.offer.id if m.offer else None, m.at)].append(m)
        for group in together.values():
            first = group[0]
            await insert_many(
                session,
                OutboundMessage.__table__,
                self.COLUMNS,
                [(m.contact_id, m.channel, m.customer_id) for m in group],
                same={
                    "campaign_id": first.campaign.id,
                    "offer_code": first.offer.code if first.offer else None,
                    "text": first.text,
                    "created_at": first.at,
                },
            )
            data = events.contact_sent_data(first)
            await stage_many(
                session,
                self.contracts,
                events.contact_sent(first),
                [
                    (
                        m.customer_id,
                        {**data, "contact_id": m.contact_id, "customer_id": m.customer_id, "channel": m.channel},
                    )
                    for m in group
                ],
            )


@dataclass
class DispatchResult:
    sent: int = 0
    deferred: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)

    def add(self, other: DispatchResult) -> None:
        self.sent += other.sent
        self.deferred += other.deferred
        for reason, n in other.suppressed.items():
            self.suppressed[reason] = self.suppressed.get(reason, 0) + n


class Due(NamedTuple):
    """A treatment customer due a contact, and what the policy judges them on."""

    customer_id: str
    contact_id: str | None
    """The deferred contact now due; None: the customer has none yet."""
    outranked: bool
    facts: CustomerFacts


_RECENT_MARKETING = select(Contact.customer_id, Contact.sent_at).where(
    Contact.customer_id.in_(bindparam("ids", expanding=True)),
    Contact.purpose == "marketing",
    Contact.channel.not_in(sorted(IN_PERSON)),
    Contact.status == SENT,
    Contact.sent_at > bindparam("since", type_=Contact.sent_at.type),
)


async def _due(
    session: AsyncSession,
    campaign: Campaign,
    purpose: str,
    rivals: Sequence[str],
    now: datetime,
    after: str,
    limit: int,
) -> list[Due]:
    """Treatment customers past `after` without a contact yet, or whose deferred contact is now due, by customer
    id, with what the policy needs of each, in two reads for the whole batch.

    The first walks the campaign's treatment group in key order and takes with each customer their contact, their
    row's facts, open complaints, consents to the campaign's channels for its purpose, and whether one of the
    `rivals` has them in its treatment group, each a scalar subquery on the outer row's keys. Both databases run
    those as one key look-up per customer, whatever their statistics say; PostgreSQL never hashes a scalar
    subquery's table or turns it into a join. Statistics are stale right after a launch (the campaign seems to
    have no assignments or contacts), and joins planned on them became a scan of every contact of the campaign,
    or of the customers from the first key on, for each batch. The second read takes the customers' recent
    marketing contacts, for the frequency cap."""

    def looked_up(column: Any, *where: Any) -> Any:
        return select(column).where(*where).correlate(Assignment).limit(1).scalar_subquery()

    rival = aliased(Assignment)
    mine = Customer.customer_id == Assignment.customer_id
    contact = and_(Contact.campaign_id == Assignment.campaign_id, Contact.customer_id == Assignment.customer_id)
    outranked = (
        looked_up(
            true(),
            rival.campaign_id.in_(rivals),
            rival.customer_id == Assignment.customer_id,
            rival.group == campaigns.TREATMENT,
        )
        if rivals
        else false()
    )
    columns = (
        looked_up(Contact.id, contact),
        outranked,
        looked_up(Customer.erased_at.is_(None) & Customer.merged_into.is_(None), mine),
        looked_up(Customer.dnd_enabled, mine),
        looked_up(Customer.dnd_until, mine),
        looked_up(func.count(), Complaint.customer_id == Assignment.customer_id, Complaint.open),
        *(
            looked_up(
                Consent.granted,
                Consent.customer_id == Assignment.customer_id,
                Consent.channel == channel,
                Consent.purpose == purpose,
            )
            for channel in campaign.channels
        ),
    )
    deferred_and_due = looked_up(and_(Contact.status == DEFERRED, Contact.not_before <= now), contact)
    conn = await session.connection()
    rows = await conn.execute(
        select(Assignment.customer_id, *columns)
        .where(
            Assignment.campaign_id == campaign.id,
            Assignment.customer_id > after,
            Assignment.group == campaigns.TREATMENT,
            func.coalesce(deferred_and_due, true()),  # no contact yet: NULL
        )
        .order_by(Assignment.customer_id)
        .limit(limit)
    )
    found = rows.all()
    recent: dict[str, list[datetime]] = defaultdict(list)
    if found:
        params = {"ids": [row[0] for row in found], "since": now - CAP_WINDOW}
        for cid, sent_at in await conn.execute(_RECENT_MARKETING, params):
            recent[cid].append(sent_at)
    keys = [(channel, purpose) for channel in campaign.channels]
    return [
        Due(
            cid,
            contact_id,
            bool(out),
            CustomerFacts(
                customer_id=cid,
                consents={
                    key: granted for key, granted in zip(keys, granted_by_channel, strict=True) if granted is not None
                },
                dnd_enabled=bool(dnd_enabled),
                dnd_until=dnd_until,
                open_complaints=complaints or 0,
                recent_contacts=recent[cid],
                erased=not kept,  # None: not in the service's view at all
            ),
        )
        for cid, contact_id, out, kept, dnd_enabled, dnd_until, complaints, *granted_by_channel in found
    ]


async def _rivals(session: AsyncSession, campaign: Campaign, now: datetime) -> list[str]:
    """Running campaigns of higher priority whose window holds `now`."""
    found = await session.scalars(
        select(Campaign.id).where(
            Campaign.id != campaign.id,
            Campaign.status == campaigns.RUNNING,
            Campaign.priority > campaign.priority,
            Campaign.starts_at <= now,
            Campaign.ends_at > now,
        )
    )
    return list(found)


REASON_ORDER = list(Suppression)


def _judge(
    planned: Sequence[PlannedContact], facts: CustomerFacts, settings: PolicySettings
) -> tuple[str, Suppression | None]:
    """(channel, None) for the first channel the policy allows; else the refusal that got furthest through the
    policy's rules (the first channel's on a tie): a customer never asked about calls but on do-not-disturb for
    texts is reported as do-not-disturb, and quiet hours (the contact waits) beat any reason judged before them."""
    refusals = []
    for contact in planned:
        reason = check(contact, facts, settings)
        if reason is None:
            return contact.channel, None
        refusals.append((contact.channel, reason))
    return max(refusals, key=lambda refusal: REASON_ORDER.index(refusal[1]))


def _contact_ids(n: int) -> list[str]:
    """`n` ids unique across batches and runs: one random prefix for the batch, then a counter (a uuid each
    would cost a million-customer run seconds)."""
    prefix = f"CT-{uuid.uuid4().hex[:20].upper()}"
    return [f"{prefix}-{i}" for i in range(n)]


NewContact = tuple[str, str, str, str | None]
"""id, customer, channel, reason: a contact row's own values; the rest are the batch's."""


@dataclass
class Batch:
    """A batch judged: what its transaction writes, and where the run goes on from."""

    campaign: Campaign
    offer: Offer | None
    now: datetime
    until: datetime
    """When the contacts deferred by quiet hours may go."""
    judged: int
    last: str
    """The last customer judged: the run's next batch starts past it."""
    new: dict[str, list[NewContact]] = field(default_factory=lambda: {SENT: [], DEFERRED: [], SUPPRESSED: []})
    """By status: contacts made now."""
    again: list[dict[str, object]] = field(default_factory=list)
    """Deferred contacts judged again, as the parameters of their update."""
    messages: list[Message] = field(default_factory=list)
    result: DispatchResult = field(default_factory=DispatchResult)


async def judge(
    session: AsyncSession, campaign: Campaign, settings: PolicySettings, now: datetime, limit: int, after: str = ""
) -> Batch | None:
    """The next `limit` due customers of the campaign past `after`, read and judged under the contact policy;
    None when nobody past `after` is due. Reads only."""
    purpose = purpose_for(campaign.objective)
    due = await _due(session, campaign, purpose, await _rivals(session, campaign, now), now, after, limit)
    if not due:
        return None
    offers = await campaigns.offers_of(session, campaign.id)
    batch = Batch(
        campaign, offers[0] if offers else None, now, quiet_until(now, settings), len(due), due[-1].customer_id
    )
    planned = [PlannedContact(campaign.id, channel, purpose, now) for channel in campaign.channels]
    fresh_ids = iter(_contact_ids(sum(1 for d in due if d.contact_id is None)))
    result = batch.result
    for d in due:
        channel, reason = (
            (campaign.channels[0], Suppression.OUTRANKED) if d.outranked else _judge(planned, d.facts, settings)
        )
        status = SENT if reason is None else DEFERRED if reason == Suppression.QUIET_HOURS else SUPPRESSED
        contact_id = d.contact_id
        if contact_id is None:
            contact_id = next(fresh_ids)
            batch.new[status].append((contact_id, d.customer_id, channel, None if reason is None else str(reason)))
        else:
            batch.again.append(
                {
                    "key": contact_id,
                    "new_status": status,
                    "new_channel": channel,
                    "new_reason": reason,
                    "new_sent_at": now if status == SENT else None,
                    "new_not_before": batch.until if status == DEFERRED else None,
                }
            )
        if status == SENT:
            result.sent += 1
            batch.messages.append(Message(contact_id, campaign, d.customer_id, channel, batch.offer, now))
        elif status == DEFERRED:
            result.deferred += 1
        else:
            result.suppressed[reason or ""] = result.suppressed.get(reason or "", 0) + 1
    return batch


NEW_CONTACT = ("id", "customer_id", "channel", "reason")


async def write(session: AsyncSession, batch: Batch, adapter: ChannelAdapter) -> None:
    """The batch's contacts as a few bulk statements, and its messages through the adapter, in the caller's
    transaction."""
    campaign, offer, now = batch.campaign, batch.offer, batch.now
    moments = {SENT: {"sent_at": now}, DEFERRED: {"not_before": batch.until}, SUPPRESSED: {}}
    same = {
        "campaign_id": campaign.id,
        "offer_id": offer.id if offer else None,
        "purpose": purpose_for(campaign.objective),
        "planned_at": now,
    }
    for status, rows in batch.new.items():
        await insert_many(
            session, Contact.__table__, NEW_CONTACT, rows, same={**same, "status": status, **moments[status]}
        )
    if batch.again:
        await session.execute(
            update(Contact.__table__)
            .where(Contact.__table__.c.id == bindparam("key"))
            .values({c: bindparam(f"new_{c}") for c in ("status", "channel", "reason", "sent_at", "not_before")}),
            batch.again,
        )
    await adapter.deliver(session, batch.messages)


LEASE = timedelta(seconds=60)
"""How long a run holds the campaign without renewing: a run that dies frees it this long after its last batch."""


TRANSACTION_MARGIN = timedelta(seconds=60)
"""A pass counts as beginning this much before it did: a trigger's transaction that stamped its customer's joining
just before the pass but committed after the pass went by still keeps the campaign unsettled."""


class DispatchBusy(Conflict):
    """Another run is dispatching the campaign now."""


async def _hold(session: AsyncSession, campaign_id: str, holder: str, until: datetime | None, *, take: bool) -> bool:
    """Take (if free, expired or ours), renew (if still ours) or, with `until` None, give back the campaign's
    dispatch lease, in one conditional update. Held on the wall clock: the campaign clock `now` may be a simulated
    one."""
    ours = Campaign.dispatch_lease == holder
    free = or_(Campaign.dispatch_lease.is_(None), Campaign.dispatch_lease_until < utcnow(), ours)
    changed = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, free if take else ours)
        .values(dispatch_lease=holder if until else None, dispatch_lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return changed.rowcount == 1  # type: ignore[attr-defined,no-any-return]


async def _lease(db: Database, campaign_id: str, holder: str, until: datetime | None, *, take: bool = False) -> bool:
    async with db.sessions.begin() as session:
        return await _hold(session, campaign_id, holder, until, take=take)


def _dispatching(campaign: Campaign, now: datetime) -> bool:
    return campaign.status == campaigns.RUNNING and campaign.starts_at <= now < campaign.ends_at


async def _judged(
    db: Database, campaign_id: str, settings: PolicySettings, now: datetime, limit: int, after: str
) -> Batch | None:
    """The next batch read and judged on a connection of its own; None when the campaign does not dispatch now
    or nobody past `after` is due."""
    async with db.sessions() as session:
        campaign = await campaigns.get(session, campaign_id)
        return await judge(session, campaign, settings, now, limit, after) if _dispatching(campaign, now) else None


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
    """Every due customer of a running campaign whose window holds `now`, batch by batch, in one pass over its
    treatment group.

    Each batch is written in one transaction, which first checks that the campaign still dispatches. While it is,
    the next batch is read and judged on a connection of its own: the database's work and the judging overlap,
    which on two cores nearly halves a PostgreSQL run. They are different customers (the batches follow each
    other in customer order).

    Raises DispatchBusy while another run holds the campaign's lease; a run that loses it (it stalled past the
    lease and another took over) stops before its next write."""
    holder = uuid.uuid4().hex
    if not await _lease(db, campaign_id, holder, utcnow() + LEASE, take=True):
        raise DispatchBusy(f"Campaign {campaign_id} is being dispatched by another run; it resumes where that one ends")
    total = DispatchResult()
    try:
        async with db.sessions() as session:
            if _settled(await campaigns.get(session, campaign_id)):
                return total  # nobody left to judge and nobody deferred: no need to walk a million customers
        walk_began = utcnow() - TRANSACTION_MARGIN
        if await _walk(db, campaign_id, adapter, settings, now, holder, total, batch_size, rate_per_second):
            await _settle_if_done(db, campaign_id, walk_began)
    finally:
        await _lease(db, campaign_id, holder, None)
    return total


async def _walk(
    db: Database,
    campaign_id: str,
    adapter: ChannelAdapter,
    settings: PolicySettings,
    now: datetime,
    holder: str,
    total: DispatchResult,
    batch_size: int,
    rate_per_second: float | None,
) -> bool:
    """One pass over the due treatment customers, adding what it did to `total`; True when it got to the end (not
    stopped by a lost lease or a campaign that stopped dispatching)."""
    started = time.monotonic()
    ahead = asyncio.create_task(_judged(db, campaign_id, settings, now, batch_size, ""))
    try:
        while (batch := await ahead) is not None:
            full = batch.judged == batch_size
            if full:  # there may be more past its last customer
                ahead = asyncio.create_task(_judged(db, campaign_id, settings, now, batch_size, batch.last))
            async with db.sessions.begin() as session:
                if not await _hold(session, campaign_id, holder, utcnow() + LEASE, take=False):
                    return False
                if not _dispatching(await campaigns.get(session, campaign_id), now):
                    return False
                await write(session, batch, adapter)
            total.add(batch.result)
            if not full:
                break
            if rate_per_second:
                wait = total.sent / rate_per_second - (time.monotonic() - started)
                if wait > 0:
                    await _lease(db, campaign_id, holder, utcnow() + LEASE + timedelta(seconds=wait))
                    await asyncio.sleep(wait)
    finally:
        if not ahead.done():
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ahead
    async with db.sessions() as session:
        return _dispatching(await campaigns.get(session, campaign_id), now)


def _settled(campaign: Campaign) -> bool:
    joined = campaign.treatment_joined_at
    return campaign.settled_at is not None and (joined is None or joined < campaign.settled_at)


async def _settle_if_done(db: Database, campaign_id: str, walk_began: datetime) -> None:
    """After a whole pass, every treatment customer who was there when it began has a contact row; with none
    deferred, nothing comes due until a trigger adds a customer. Settled as of the pass's beginning, so a customer
    who joined behind the pass (past its position) keeps the campaign unsettled."""
    async with db.sessions.begin() as session:
        deferred = await session.scalar(
            select(Contact.id).where(Contact.campaign_id == campaign_id, Contact.status == DEFERRED).limit(1)
        )
        if deferred is None:
            await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(settled_at=walk_began)
                .execution_options(synchronize_session=False)
            )


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
        try:
            await dispatch(
                db, campaign_id, adapter, settings, now, batch_size=batch_size, rate_per_second=rate_per_second
            )
        except DispatchBusy:
            log.info("campaign %s is being dispatched by another run; the calendar leaves it to that one", campaign_id)
