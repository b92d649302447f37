"""What the churn service consumes (billing.*, ticketing.ticket, campaign.contact, customer.profile: the feature
store's events, mapped in `domain.ingest`) and what it publishes (churn.score: a customer's risk score)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_churn.domain import ingest
from crm_kit.consumer import Subscription
from crm_kit.events import CloudEvent, new_event

SOURCE = "/crm/churn"
SCORE_COMPUTED = "churn.score.computed.v1"
SCORE_PLACES = Decimal("0.0001")


async def on_event(session: AsyncSession, event: CloudEvent) -> None:
    """Any consumed event: into the store, in the runner's transaction beside the event's inbox row."""
    await ingest.apply(session, event.type, event.data)


def subscription(group: str) -> Subscription:
    """Exactly the types the store learns from (`ingest.CONSUMED`); the others on the same topics (an SLA warning,
    a consent change) are passed over by the runner."""
    return Subscription(group=group, handlers=dict.fromkeys(ingest.CONSUMED, on_event))


def score_computed(
    customer_id: str,
    kind: str,
    score: Decimal,
    band: str,
    model_version: str,
    reasons: list[dict[str, Any]],
    scored_at: datetime,
) -> CloudEvent:
    """离网/坏账预警: the score as a decimal string of 4 places (no binary float on the wire), at the time it was
    computed."""
    at = scored_at.astimezone(UTC).isoformat()
    return new_event(
        SCORE_COMPUTED,
        source=SOURCE,
        subject=customer_id,
        time=scored_at,
        data={
            "customer_id": customer_id,
            "occurred_at": at,
            "model_kind": kind,
            "score": str(score.quantize(SCORE_PLACES)),
            "risk_band": band,
            "model_version": model_version,
            "reasons": reasons,
            "scored_at": at,
        },
    )
