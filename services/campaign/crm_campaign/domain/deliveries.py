"""Delivery receipts (状态报告): what the channel gateways (the SMS platform, the outbound call centre) say became
of the contacts they were handed — delivered to the customer, or failed with the channel's reason.

A receipt names a contact this service sent; a batch naming any other is refused whole, each bad receipt named, so
the gateway can correct and resend it and nothing is half taken. Delivered is final: a later failure report for a
delivered contact is stale. A failure may be followed by a delivery (the channel retried and got through). The
same report twice changes nothing, so a gateway may resend a batch it is unsure of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_campaign.models import Contact
from crm_kit.errors import InvalidInput

DELIVERED, FAILED = "delivered", "failed"
SENT = "sent"


@dataclass(frozen=True)
class Receipt:
    contact_id: str
    status: str
    at: datetime
    error: str | None = None


@dataclass(frozen=True)
class Recorded:
    recorded: int
    unchanged: int


def _changes(current: str | None, reported: str) -> bool:
    return current is None or (current == FAILED and reported == DELIVERED)


async def record(session: AsyncSession, receipts: Sequence[Receipt]) -> Recorded:
    """Record a batch of receipts, in the order they happened; refuse the batch if any names a contact this service
    did not send."""
    ids = sorted({r.contact_id for r in receipts})
    rows = await session.execute(select(Contact.id, Contact.status, Contact.delivery).where(Contact.id.in_(ids)))
    found = {contact_id: (status, delivery) for contact_id, status, delivery in rows.all()}
    errors = []
    for n, receipt in enumerate(receipts):
        status = found.get(receipt.contact_id, (None, None))[0]
        if status is None:
            errors.append({"field": f"receipts[{n}].contact_id", "message": f"no contact {receipt.contact_id}"})
        elif status != SENT:
            message = f"contact {receipt.contact_id} is {status}, not sent: there is nothing to deliver"
            errors.append({"field": f"receipts[{n}].contact_id", "message": message})
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more receipts)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first['field']}: {first['message']}{more}", field=first["field"], errors=errors)
    state = {contact_id: delivery for contact_id, (_, delivery) in found.items()}
    changed: dict[str, Receipt] = {}
    unchanged = 0
    for receipt in sorted(receipts, key=lambda r: r.at):
        if _changes(state[receipt.contact_id], receipt.status):
            state[receipt.contact_id] = receipt.status
            changed[receipt.contact_id] = receipt
        else:
            unchanged += 1
    if changed:
        table = Contact.__table__
        statement = (
            update(table)
            .where(table.c.id == bindparam("r_id"))
            .values(
                delivery=bindparam("r_status"),
                delivery_at=bindparam("r_at", type_=table.c.delivery_at.type),
                delivery_error=bindparam("r_error"),
            )
        )
        conn = await session.connection()
        await conn.execute(
            statement,
            [
                {
                    "r_id": r.contact_id,
                    "r_status": r.status,
                    "r_at": r.at,
                    "r_error": r.error if r.status == FAILED else None,
                }
                for r in changed.values()
            ],
        )
    return Recorded(recorded=len(receipts) - unchanged, unchanged=unchanged)
