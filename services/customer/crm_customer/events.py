"""What the customer service consumes (billing.subscription) and publishes (customer.profile)."""

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer import domain
from crm_customer.models import Customer
from crm_kit.consumer import Handler, Subscription
from crm_kit.events import CloudEvent, Contracts, new_event
from crm_kit.outbox import stage

SOURCE = "/crm/customer"

SUBSCRIPTION_EVENTS = [
    "billing.subscription.activated.v1",
    "billing.subscription.plan_changed.v1",
    "billing.subscription.suspended.v1",
    "billing.subscription.resumed.v1",
    "billing.subscription.terminated.v1",
    "billing.subscription.ported_out.v1",
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


def profile_updated(customer: Customer, lines: domain.LineCounts) -> CloudEvent:
    return _profile(
        "customer.profile.updated.v1",
        customer,
        active_lines=lines.active,
        total_lines=lines.total,
        updated_at=_iso(customer.updated_at),
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def subscription(contracts: Contracts, group: str) -> Subscription:
    async def on_subscription_event(session: AsyncSession, event: CloudEvent) -> None:
        change = await domain.apply_subscription_event(session, event.type, event.data)
        published = []
        if change.created:
            published.append(profile_created(change.customer))
        if change.profile_changed:
            published.append(profile_updated(change.customer, change.lines))
        await stage(session, contracts, published)

    handlers: Mapping[str, Handler] = dict.fromkeys(SUBSCRIPTION_EVENTS, on_subscription_event)
    return Subscription(group=group, handlers=handlers)
