"""TMF621 notifications (事件通知): partners and the regulator platform register a listener (`/hub`) and are POSTed
the ticket events its query selects.

Staging: each notification is a `hub_delivery` row written in the transaction of the ticket change it reports, so a
change that commits is told and one that is refused (a 409) tells nothing. The body is fixed when staged: the TMF621
event with the ticket as it stood after the change. The event id is the CloudEvent's where the change has one, so a
listener can match it with what ticketing.ticket carried. With no listener registered, a change costs one small
query.

Delivery: a worker POSTs due rows in seq order, per listener one at a time, listeners side by side. It claims a batch
first (a lease: `next_attempt_at` pushed past the round, rows locked with SKIP LOCKED on PostgreSQL so two replicas
never take the same row), POSTs outside any transaction, then records the outcome. A 2xx delivers; anything else is
retried after `hub_backoff_seconds` (the last step repeats) until `hub_max_attempts`, then the row is kept as
`failed` with its last error. A failure holds back the rest of that listener's batch until its retry, so a listener
that is down costs one attempt per round, not one per event. Delivery is at least once (a crash between the POST and
its record sends it again): listeners drop repeated `eventId`s.

Signature (接口签名), so a listener knows the POST is ours and unaltered:

    X-Hub-Timestamp: <Unix seconds when sent>
    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of "<X-Hub-Timestamp>.<body bytes>", keyed with the listener's secret>

The secret is handed out once, in the answer to the registration. The timestamp is signed with the body so a
captured POST cannot be replayed later: listeners refuse one whose timestamp is more than a few minutes from their
clock (as crm_kit.signing does for the BOSS feed, with the same scheme).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from prometheus_client import Counter
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_kit.db import Database, utcnow
from crm_kit.errors import InvalidInput, NotFound
from crm_kit.events import CloudEvent
from crm_kit.periodic import repeat
from crm_kit.signing import sign
from crm_ticketing import events
from crm_ticketing.domain import representation
from crm_ticketing.models import HubDelivery, HubSubscription, Ticket
from crm_ticketing.schemas.hub import EVENT_TYPES, EventSubscriptionInput, EventType, TroubleTicketEvent
from crm_ticketing.settings import Settings

log = logging.getLogger(__name__)

CREATE: EventType = "TroubleTicketCreateEvent"
STATUS_CHANGE: EventType = "TroubleTicketStatusChangeEvent"
RESOLVED: EventType = "TroubleTicketResolvedEvent"
ATTRIBUTE_VALUE_CHANGE: EventType = "TroubleTicketAttributeValueChangeEvent"
DELETE: EventType = "TroubleTicketDeleteEvent"

TOLD_AS: dict[str, EventType] = {
    events.CREATED: CREATE,
    events.STATE_CHANGED: STATUS_CHANGE,
    events.RESOLVED: RESOLVED,
}
"""The ticketing.ticket events listeners hear of, as the TMF621 notification each becomes."""

MEMBERS = {
    "name": "name",
    "description": "description",
    "severity": "severity",
    "priority": "priority",
    "category": "category",
    "expected_resolution_date": "expectedResolutionDate",
    "requested_resolution_date": "requestedResolutionDate",
    "related_entities": "relatedEntity",
    "attachments": "attachment",
    "queue": "queue",
    "assignee": "assignee",
}
"""The Ticket attributes a patch may change (the status aside, told by its own events), and the TMF member an
AttributeValueChangeEvent names for each in `fieldPath`."""

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RETRIED = "retried"
"""Not a state: a delivery that failed and will be tried again stays pending; the counter tells it apart."""
BATCH = 100
"""Deliveries claimed per round; a backlog is worked off in rounds."""
LEASE_SECONDS = 300
"""How long a claim holds its rows; a replica that dies mid-round leaves them due again after it. No POST starts
so late in a round that it could outlive the lease."""
ERROR_CHARS = 500
ERROR_BODY_BYTES = 200
"""Of a refusing listener's answer, what `last_error` keeps (the rest is not read)."""

DELIVERIES = Counter(
    "crm_ticketing_hub_deliveries_total",
    "TMF621 notification POSTs by outcome: delivered (2xx), retried (failed, tried again later), failed (given up)",
    ["outcome"],
)


# --- listeners ---------------------------------------------------------------------------------------------------


def event_types(query: str | None) -> list[str]:
    """The event types a listener's query selects: `eventType=A` or `eventType=A,B` (or the key repeated); none
    means all. Any other filter is refused rather than ignored: the listener would get what it did not ask for."""
    if query is None:
        return []
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as unreadable:
        raise InvalidInput(
            f"Cannot read the query {query!r}; e.g. eventType=TroubleTicketCreateEvent", field="query"
        ) from unreadable
    selected: list[str] = []
    for key, value in pairs:
        if key != "eventType":
            raise InvalidInput(f"Listeners filter by eventType only, not {key!r}", field="query")
        names = [name.strip() for name in value.split(",")]
        unknown = [name for name in names if name not in EVENT_TYPES]
        if unknown:
            raise InvalidInput(
                f"Unknown event type(s) {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}",
                field="query",
            )
        selected.extend(name for name in names if name not in selected)
    return selected


async def register(
    session: AsyncSession, body: EventSubscriptionInput, *, actor: str, now: datetime
) -> HubSubscription:
    """A new listener with a secret of its own to verify our signatures by."""
    listener = HubSubscription(
        id=uuid.uuid4().hex,
        callback=body.callback,
        query=body.query,
        event_types=event_types(body.query),
        secret=secrets.token_urlsafe(32),
        created_by=actor,
        created_at=now,
    )
    session.add(listener)
    await session.flush()
    return listener


async def find(session: AsyncSession, listener_id: str) -> HubSubscription:
    listener = await session.get(HubSubscription, listener_id)
    if listener is None:
        raise NotFound(f"No listener {listener_id}", field="id")
    return listener


async def unregister(session: AsyncSession, listener_id: str) -> None:
    """The listener and what it was still owed (ON DELETE CASCADE): nothing more is sent to it."""
    if (await session.execute(delete(HubSubscription).where(HubSubscription.id == listener_id))).rowcount == 0:
        raise NotFound(f"No listener {listener_id}", field="id")


# --- staging -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One TMF621 notification to stage: its type, id, and when what it reports happened."""

    event_type: EventType
    event_id: str
    occurred_at: datetime
    field_path: str | None = None


async def notify(session: AsyncSession, ticket_id: str, staged: Iterable[CloudEvent], *, now: datetime) -> int:
    """Stage for the listeners what the ticketing.ticket events just staged tell of, under the same ids."""
    notices = [Notice(TOLD_AS[e.type], e.id, e.time or now) for e in staged if e.type in TOLD_AS]
    return await _stage(session, ticket_id, notices, now)


def snapshot(ticket: Ticket) -> dict[str, Any]:
    """The members a patch may change, as they stand before it."""
    return {key: getattr(ticket, key) for key in MEMBERS}


async def notify_changed(
    session: AsyncSession, ticket: Ticket, before: dict[str, Any], *, noted: bool, now: datetime
) -> int:
    """TroubleTicketAttributeValueChangeEvent for a patch that changed members other than the status, compared with
    their `snapshot` before it; fieldPath names them (`noted`: the patch added notes)."""
    changed = [member for key, member in MEMBERS.items() if getattr(ticket, key) != before[key]]
    if noted:
        changed.append("note")
    if not changed:
        return 0
    return await _stage(session, ticket.id, [Notice(ATTRIBUTE_VALUE_CHANGE, _new_id(), now, ",".join(changed))], now)


async def notify_deleted(session: AsyncSession, ticket_id: str) -> int:
    """TroubleTicketDeleteEvent with the ticket as it was, staged before it goes. A delete takes no request clock:
    this is stamped with the real time."""
    now = utcnow()
    return await _stage(session, ticket_id, [Notice(DELETE, _new_id(), now)], now)


def _new_id() -> str:
    return str(uuid.uuid4())


async def _stage(session: AsyncSession, ticket_id: str, notices: Sequence[Notice], now: datetime) -> int:
    """One pending delivery per listener and notice its query selects, due at once. Listeners are few (partners,
    the regulator platform): one query reads them all, and the ticket is loaded only when someone is listening.
    They are read FOR KEY SHARE (PostgreSQL), the lock the deliveries' foreign key takes anyway: a listener removed
    meanwhile waits for this change to commit instead of failing it."""
    if not notices:
        return 0
    query = select(HubSubscription.id, HubSubscription.event_types).with_for_update(read=True, key_share=True)
    listeners = (await session.execute(query)).all()
    owed = [(lid, n) for n in notices for lid, wanted in listeners if not wanted or n.event_type in wanted]
    if not owed:
        return 0
    [view] = await representation.load_views(session, [ticket_id])
    resource = representation.ticket_resource(view, now)
    bodies = {n.event_id: _body(n, resource, now) for n in dict.fromkeys(n for _, n in owed)}
    session.add_all(
        HubDelivery(
            subscription_id=lid,
            event_id=n.event_id,
            event_type=n.event_type,
            ticket_id=ticket_id,
            body=bodies[n.event_id],
            state=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for lid, n in owed
    )
    return len(owed)


def _body(notice: Notice, resource: dict[str, Any], now: datetime) -> str:
    """The TMF621 event, checked against its schema; the ticket in it as the API shows it, nulls included."""
    event = TroubleTicketEvent.model_validate(
        {
            "eventId": notice.event_id,
            "eventTime": representation.local(now),
            "eventType": notice.event_type,
            "timeOcurred": representation.local(notice.occurred_at),
            "fieldPath": notice.field_path,
            "event": {"troubleTicket": resource},
        }
    ).model_dump(mode="json", exclude_none=True)
    event["event"]["troubleTicket"] = resource
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


# --- delivery ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    seq: int
    listener_id: str
    callback: str
    secret: str
    event_id: str
    event_type: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Attempt:
    """A POST made: `error` None when the listener answered 2xx."""

    claimed: Claimed
    error: str | None
    at: datetime


@dataclass
class Round:
    """Deliveries by outcome (delivered, retried, failed); `full` when the batch was, so more may be due."""

    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    full: bool = False


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 5 s, 30 s, 2 min, 10 min, then hourly by default."""
    steps = settings.hub_backoff_seconds
    return timedelta(seconds=steps[min(attempts, len(steps)) - 1])


async def _claim(db: Database, now: datetime) -> tuple[list[Claimed], datetime]:
    """A batch of due deliveries, oldest first, leased to this round until the instant returned."""
    until = now + timedelta(seconds=LEASE_SECONDS)
    query = (
        select(
            HubDelivery.seq,
            HubDelivery.subscription_id,
            HubSubscription.callback,
            HubSubscription.secret,
            HubDelivery.event_id,
            HubDelivery.event_type,
            HubDelivery.body,
            HubDelivery.attempts,
        )
        .join(HubSubscription, HubSubscription.id == HubDelivery.subscription_id)
        .where(HubDelivery.next_attempt_at <= now)
        .order_by(HubDelivery.seq)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=HubDelivery)
    )
    async with db.sessions.begin() as session:
        claimed = [Claimed(*row) for row in await session.execute(query)]
        if claimed:
            leased = update(HubDelivery).where(HubDelivery.seq.in_([c.seq for c in claimed]))
            await session.execute(leased.values(next_attempt_at=until))
    return claimed, until


async def _post(client: httpx.AsyncClient, claimed: Claimed, timeout: float) -> str | None:
    """POST one notification, signed; None when the listener answered 2xx, else why not."""
    body = claimed.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Event-Id": claimed.event_id,
        "X-Event-Type": claimed.event_type,
        "X-Hub-Timestamp": str(timestamp),
        "X-Hub-Signature-256": sign(claimed.secret, timestamp, body),
    }
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", claimed.callback, content=body, headers=headers) as response:
                if response.is_success:
                    return None
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) >= ERROR_BODY_BYTES:
                        break
                return f"HTTP {response.status_code}: {answer[:ERROR_BODY_BYTES].decode(errors='replace')}"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"


async def _post_in_order(
    client: httpx.AsyncClient, batch: list[Claimed], timeout: float, deadline: float
) -> tuple[list[Attempt], list[Claimed]]:
    """One listener's batch in seq order: the POSTs made, and those held back behind a failure (they wait for its
    retry). Stops, the rest left to the lease, when a POST could outlive the lease."""
    attempts: list[Attempt] = []
    for i, claimed in enumerate(batch):
        if time.monotonic() > deadline:
            break
        attempt = Attempt(claimed, await _post(client, claimed, timeout), utcnow())
        attempts.append(attempt)
        if attempt.error is not None:
            return attempts, batch[i + 1 :]
    return attempts, []


def _after(attempt: Attempt, settings: Settings) -> tuple[str, dict[str, Any]]:
    """The outcome of a POST and the columns that record it."""
    attempts = attempt.claimed.attempts + 1
    if attempt.error is None:
        return DELIVERED, {
            "state": DELIVERED,
            "attempts": attempts,
            "delivered_at": attempt.at,
            "next_attempt_at": None,
        }
    tried = {"attempts": attempts, "last_error": attempt.error[:ERROR_CHARS]}
    if attempts >= settings.hub_max_attempts:
        return FAILED, {**tried, "state": FAILED, "next_attempt_at": None}
    return RETRIED, {**tried, "next_attempt_at": attempt.at + backoff(settings, attempts)}


async def deliver_due(db: Database, client: httpx.AsyncClient, settings: Settings, now: datetime) -> Round:
    """One round: claim what is due at `now`, POST it, record what happened. A record is written only while the
    lease is still ours (`next_attempt_at` as the claim left it)."""
    claimed, until = await _claim(db, now)
    if not claimed:
        return Round()
    by_listener: dict[str, list[Claimed]] = {}
    for c in claimed:
        by_listener.setdefault(c.listener_id, []).append(c)
    deadline = time.monotonic() + LEASE_SECONDS - settings.hub_timeout_seconds - 1
    posted = await asyncio.gather(
        *(_post_in_order(client, batch, settings.hub_timeout_seconds, deadline) for batch in by_listener.values())
    )
    result = Round(full=len(claimed) == BATCH)
    async with db.sessions.begin() as session:

        async def record(seq: int, values: dict[str, Any]) -> None:
            ours = update(HubDelivery).where(HubDelivery.seq == seq, HubDelivery.next_attempt_at == until)
            await session.execute(ours.values(**values))

        for attempts, held in posted:
            retry_at: datetime | None = None
            for attempt in attempts:
                outcome, values = _after(attempt, settings)
                result.outcomes[outcome] += 1
                retry_at = values["next_attempt_at"]
                await record(attempt.claimed.seq, values)
                if outcome == FAILED:
                    log.warning("hub delivery %s given up: %s", attempt.claimed.seq, attempt.error)
            for c in held:
                await record(c.seq, {"next_attempt_at": retry_at or utcnow()})
    for outcome, count in result.outcomes.items():
        DELIVERIES.labels(outcome).inc(count)
    return result


async def run_deliveries(db: Database, settings: Settings) -> None:
    """Deliver every `hub_delivery_seconds`, again at once while batches come back full."""
    async with httpx.AsyncClient(timeout=settings.hub_timeout_seconds, follow_redirects=False) as client:

        async def round_() -> None:
            while (await deliver_due(db, client, settings, utcnow())).full:
                pass

        await repeat(round_, settings.hub_delivery_seconds, what="hub delivery round", wait_first=True)
