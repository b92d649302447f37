"""What the customer service consumes (billing.*; ticketing.ticket, churn.score, campaign.contact) and publishes
(customer.profile: profile, consents)."""

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain import billing, consents, key_accounts, lines, metrics, privacy, projections, timeline
from crm_customer.models import (
    Consent,
    Customer,
    CustomerErasure,
    CustomerMerge,
    DoNotDisturb,
    KeyAccountAssignment,
)
from crm_kit.consumer import Handler, Subscription
from crm_kit.db import utcnow
from crm_kit.events import CloudEvent, Contracts, new_event, parse_rfc3339
from crm_kit.outbox import stage

SOURCE = "/crm/customer"

SUBSCRIPTION_EVENTS = [
    "billing.subscription.activated.v1",
    "billing.subscription.plan_changed.v1",
    "billing.subscription.suspended.v1",
    "billing.subscription.resumed.v1",
    "billing.subscription.terminated.v1",
    "billing.subscription.ported_out.v1",
    lines.SIM_SWAPPED,
    lines.ADDON_ORDERED,
]


def _profile(event_type: str, customer: Customer, **data: object) -> CloudEvent:
    """A customer.profile event: who the customer is now, plus what this kind of event adds."""
    return new_event(
        event_type,
        source=SOURCE,
        subject=customer.id,
        data={
            "customer_id": customer.id,
            "name": customer.name,
            "customer_type": customer.customer_type,
            "region": customer.region,
            "status": customer.status,
            **data,
        },
    )


def profile_created(customer: Customer) -> CloudEvent:
    return _profile("customer.profile.created.v1", customer, created_at=_iso(customer.created_at))


def profile_updated(customer: Customer, lines: lines.LineCounts) -> CloudEvent:
    return _profile(
        "customer.profile.updated.v1",
        customer,
        active_lines=lines.active,
        total_lines=lines.total,
        updated_at=_iso(customer.updated_at),
    )


CONSENT_CHANGED = consents.CONSENT_CHANGED
DND_CHANGED = consents.DND_CHANGED


def _dnd_state(dnd: DoNotDisturb | None) -> dict[str, object]:
    """Do-not-disturb as in force now: an elapsed `until` reads as off."""
    if dnd is None or not consents.dnd_active(dnd.enabled, dnd.until, utcnow()):
        return {"enabled": False, "until": None}
    return {"enabled": True, "until": _iso(dnd.until) if dnd.until else None}


def consent_changed(consent: Consent, dnd: DoNotDisturb | None, event_id: str | None = None) -> CloudEvent:
    return new_event(
        CONSENT_CHANGED,
        source=SOURCE,
        subject=consent.customer_id,
        event_id=event_id,
        data={
            "customer_id": consent.customer_id,
            "channel": consent.channel,
            "purpose": consent.purpose,
            "granted": consent.granted,
            "source": consent.source,
            "recorded_at": _iso(consent.recorded_at),
            "do_not_disturb": _dnd_state(dnd),
        },
    )


def dnd_changed(dnd: DoNotDisturb, event_id: str | None = None) -> CloudEvent:
    return new_event(
        DND_CHANGED,
        source=SOURCE,
        subject=dnd.customer_id,
        event_id=event_id,
        data={
            "customer_id": dnd.customer_id,
            "enabled": dnd.enabled,
            "until": _iso(dnd.until) if dnd.until else None,
            "source": dnd.source,
            "recorded_at": _iso(dnd.recorded_at),
        },
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def subscription(contracts: Contracts, group: str) -> Subscription:
    """billing.subscription.* shape customers and lines; billing.{usage,invoice,payment,account}.* feed the billing
    projections; every one of them becomes a row of the customer's timeline."""

    async def on_subscription_event(session: AsyncSession, event: CloudEvent) -> None:
        change = await lines.apply_subscription_event(session, event.type, event.data)
        await refresh_segments(session, contracts, change.customer.id, frozenset({metrics.LINE_FACTS}))
        await timeline.add_to_timeline(
            session,
            change.customer.id,
            occurred_at=parse_rfc3339(event.data["occurred_at"]),
            kind="billing",
            event_type=event.type,
            summary=billing.billing_summary_line(event.type, event.data),
            source_event_id=event.id,
        )
        published = []
        if change.created:
            published.append(profile_created(change.customer))
        if change.profile_changed:
            published.append(profile_updated(change.customer, change.lines))
        await stage(session, contracts, published)

    async def on_billing_event(session: AsyncSession, event: CloudEvent) -> None:
        change = await billing.apply_billing_event(session, event.id, event.type, event.data)
        facts = FACTS_CHANGED_BY.get(event.type, frozenset({metrics.BILLING_FACTS}))
        if facts:
            await refresh_segments(session, contracts, change.customer.id, facts)
        if change.created:
            await stage(session, contracts, [profile_created(change.customer)])

    handlers: Mapping[str, Handler] = {
        **dict.fromkeys(SUBSCRIPTION_EVENTS, on_subscription_event),
        **dict.fromkeys(billing.BILLING_EVENTS, on_billing_event),
    }
    return Subscription(group=group, handlers=handlers)


# --- key accounts and privacy: customer.profile.key_account_changed / erased / merged ------------------------------


def key_account_changed(customer: Customer, entry: KeyAccountAssignment) -> CloudEvent:
    return new_event(
        key_accounts.KEY_ACCOUNT_CHANGED,
        source=SOURCE,
        subject=customer.id,
        data={
            "customer_id": customer.id,
            "change": key_accounts.change_kind(entry),
            "key_account": customer.key_account,
            "tier": customer.key_account_tier,
            "account_manager": customer.account_manager,
            "from_manager": entry.from_manager,
            "reason": entry.reason,
            "changed_by": entry.changed_by,
            "changed_at": _iso(entry.changed_at),
        },
    )


def customer_erased(erasure: CustomerErasure) -> CloudEvent:
    """No personal data: the id, when, and the reason code."""
    return new_event(
        privacy.ERASED,
        source=SOURCE,
        subject=erasure.customer_id,
        data={"customer_id": erasure.customer_id, "erased_at": _iso(erasure.erased_at), "reason": erasure.reason},
    )


def customers_merged(merge: CustomerMerge) -> CloudEvent:
    return new_event(
        privacy.MERGED,
        source=SOURCE,
        subject=merge.survivor_id,
        data={"survivor_id": merge.survivor_id, "merged_id": merge.merged_id, "merged_at": _iso(merge.merged_at)},
    )


# --- customer.segment: built-in tier changes and rule-segment membership (客户分群) --------------------------------

TIER_CHANGED = "customer.segment.tier_changed.v1"
MEMBERSHIP_CHANGED = "customer.segment.membership_changed.v1"


def tier_changed(customer_id: str, change: metrics.TierChange, occurred_at: datetime) -> CloudEvent:
    return new_event(
        TIER_CHANGED,
        source=SOURCE,
        subject=customer_id,
        data={
            "customer_id": customer_id,
            "dimension": change.dimension,
            "from": change.old,
            "to": change.new,
            "occurred_at": _iso(occurred_at),
        },
    )


def membership_changed(
    segment_id: str, segment_name: str, customer_id: str, change: str, occurred_at: datetime
) -> CloudEvent:
    return new_event(
        MEMBERSHIP_CHANGED,
        source=SOURCE,
        subject=customer_id,
        data={
            "segment_id": segment_id,
            "segment_name": segment_name,
            "customer_id": customer_id,
            "change": change,
            "occurred_at": _iso(occurred_at),
        },
    )


FACTS_CHANGED_BY = {
    billing.USAGE_RECORDED: frozenset({metrics.USAGE_FACTS}),
    billing.CREDIT_LIMIT_CHANGED: frozenset(),
    billing.COLLECTION_STATUS_CHANGED: frozenset(),
}
"""Billing events that change less than the bills-and-payments facts (account standing changes none)."""


async def refresh_segments(
    session: AsyncSession, contracts: Contracts, customer_id: str, facts: frozenset[str] = metrics.ALL_FACTS
) -> None:
    """After an event about the customer: the facts it can change, the built-in tiers, and one tier_changed per
    tier moved. Rule segments are not re-evaluated here (see the segments API)."""
    now = utcnow()
    changes = await metrics.refresh(session, customer_id, now, facts)
    await stage(session, contracts, [tier_changed(customer_id, change, now) for change in changes])


# --- projections of ticketing.ticket, churn.score and campaign.contact (工单/预警/营销触达) -------------------------

PROJECTIONS_GROUP_SUFFIX = "-projections"


def projection_subscription(contracts: Contracts, group: str) -> Subscription:
    """Tickets, risk scores and campaign contacts from the other services, in a consumer group of their own so a
    backlog of one kind never waits behind the BOSS feed; each becomes a row of the customer's timeline."""

    async def on_projection_event(session: AsyncSession, event: CloudEvent) -> None:
        change = await projections.apply_projection_event(session, event.id, event.type, event.data)
        await refresh_segments(session, contracts, change.customer.id, frozenset())
        if change.created:
            await stage(session, contracts, [profile_created(change.customer)])

    handlers: Mapping[str, Handler] = dict.fromkeys(projections.PROJECTION_EVENTS, on_projection_event)
    return Subscription(group=group + PROJECTIONS_GROUP_SUFFIX, handlers=handlers)
