"""Who may see which customer, and in how much detail: the object-level checks and the personal-data rules.

- Reading customers needs a staff or partner role; a caller who is only a key-account manager (客户经理) sees
  the key accounts in their own portfolio and nothing else, and a partner (代理商/渠道) only the customers with a
  line it sold (the line's dealer code is the partner's id).
- Phone and ID-card numbers are masked unless the caller holds `pii:read` AND says why in `X-Access-Reason`;
  every unmasked answer writes one audit row per customer shown (who, what, when, why).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from asgi_correlation_id import correlation_id
from fastapi import Depends, Header, Path, Request, Response
from sqlalchemy import ColumnElement, and_, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customer.domain.party import portfolio, sold_by
from crm_customer.models import Customer, PiiAccess
from crm_kit.auth import PII_READ, Caller, Principal
from crm_kit.db import Database, utcnow
from crm_kit.errors import NotFound
from crm_kit.service import DbSession

STAFF = ("agent", "supervisor", "admin", "marketer", "analyst")
READERS = (*STAFF, "key_account_manager", "partner")
WRITERS = ("agent", "supervisor", "admin")
PRIVACY_OFFICERS = ("supervisor", "admin")
MASKED_HEADER = "X-PII-Masked"


def portfolio_only(principal: Principal) -> bool:
    """A key-account manager with no broader role works only on their own portfolio."""
    return principal.has_role("key_account_manager") and not principal.has_role(*STAFF)


def partner_only(principal: Principal) -> bool:
    """A partner with no staff role works only on the customers it brought in."""
    return principal.has_role("partner") and not principal.has_role(*STAFF, "key_account_manager")


def brought_in_by(principal: Principal) -> ColumnElement[bool]:
    """The partner's customers; none for a partner token without a partner id (never the lines sold by no one)."""
    return sold_by(principal.partner_id) if principal.partner_id else false()


def visible(principal: Principal) -> ColumnElement[bool]:
    """The customers `principal` may see, as a WHERE clause for lists and searches (a merged duplicate is no
    customer of its own any more)."""
    if portfolio_only(principal):
        return portfolio(principal.subject)
    if partner_only(principal):
        return and_(Customer.merged_into.is_(None), brought_in_by(principal))
    return Customer.merged_into.is_(None)


async def check_visible(session: AsyncSession | Database, principal: Principal, customer: Customer) -> None:
    """404 for a customer outside the caller's portfolio: its existence is not the caller's business either.
    404 too for a duplicate merged into another (客户合并), naming the survivor in `merged_into`."""
    if customer.merged_into:
        raise NotFound(
            f"Customer {customer.id} was merged into {customer.merged_into}",
            field="customer_id",
            merged_into=customer.merged_into,
        )
    if portfolio_only(principal) and not (customer.key_account and customer.account_manager == principal.subject):
        raise NotFound(f"No customer {customer.id} in your portfolio", field="customer_id")
    if partner_only(principal):
        ours = select(Customer.id).where(Customer.id == customer.id, brought_in_by(principal))
        if isinstance(session, Database):  # a route with no session of its own opens one only for a partner
            async with session.sessions() as own:
                found = await own.scalar(ours)
        else:
            found = await session.scalar(ours)
        if found is None:
            raise NotFound(f"No customer {customer.id} among those you brought in", field="customer_id")


@dataclass
class Access:
    """The caller of this request, and what they may see of personal data."""

    principal: Principal
    reason: str | None
    action: str
    response: Response
    db: Database

    @property
    def reveal_pii(self) -> bool:
        return self.principal.may(PII_READ) and bool(self.reason)

    @property
    def headers(self) -> dict[str, str]:
        """For a route that builds its own response: tells a `pii:read` holder why the numbers came back masked."""
        if self.principal.may(PII_READ) and not self.reason:
            return {MASKED_HEADER: "reason-required: send X-Access-Reason"}
        return {}

    async def audit(self, customer_ids: Iterable[str], fields: str, session: AsyncSession | None = None) -> None:
        """One audit row per customer whose personal data this answer shows unmasked: in the request's
        transaction when given one, else in a transaction of its own, so a read-only route opens none at all
        for the masked answers most callers get."""
        if not self.reveal_pii:
            self.response.headers.update(self.headers)
            return
        if session is None:
            async with self.db.sessions.begin() as own:
                await self.audit(customer_ids, fields, own)
            return
        now = utcnow()
        rows = [
            PiiAccess(
                at=now,
                actor=self.principal.subject,
                roles=" ".join(sorted(self.principal.roles)),
                customer_id=customer_id,
                fields=fields,
                reason=self.reason or "",
                action=self.action,
                request_id=correlation_id.get(),
            )
            for customer_id in dict.fromkeys(customer_ids)
        ]
        session.add_all(rows)
        await session.flush()


async def reader(
    principal: Caller,
    request: Request,
    response: Response,
    reason: Annotated[
        str | None,
        Header(
            alias="X-Access-Reason",
            min_length=3,
            max_length=300,
            description="Why personal data is needed (e.g. a ticket number); with `pii:read` it unmasks and is audited",
        ),
    ] = None,
) -> Access:
    principal.require_role(*READERS)
    action = f"{request.method} {request.scope['path']}"  # not request.url: it builds the whole URL
    return Access(principal, reason, action, response, request.app.state.runtime.db)


async def staff_reader(access: Annotated[Access, Depends(reader)]) -> Access:
    """The operator's own books (segments): staff and key-account managers, not partners."""
    if partner_only(access.principal):
        access.principal.require_role(*STAFF, "key_account_manager")
    return access


async def writer(principal: Caller) -> Principal:
    principal.require_role(*WRITERS)
    return principal


async def privacy_officer(principal: Caller) -> Principal:
    """Exports, erasures and merges: a supervisor or an administrator (the DPO's delegates)."""
    principal.require_role(*PRIVACY_OFFICERS)
    return principal


Reader = Annotated[Access, Depends(reader)]
StaffReader = Annotated[Access, Depends(staff_reader)]
Writer = Annotated[Principal, Depends(writer)]
PrivacyOfficer = Annotated[Principal, Depends(privacy_officer)]


async def existing_customer(
    customer_id: Annotated[str, Path(max_length=64)], session: DbSession, access: Reader
) -> str:
    """The id of a customer the caller may see (404 otherwise)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    await check_visible(session, access.principal, customer)
    return customer_id


async def customer_for_update(
    customer_id: Annotated[str, Path(max_length=64)], session: DbSession, principal: Writer
) -> str:
    """The customer, locked (PostgreSQL) so that one customer's changes apply one at a time."""
    customer = await session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())
    if customer is None:
        raise NotFound(f"No customer {customer_id}", field="customer_id")
    await check_visible(session, principal, customer)
    return customer_id


ExistingCustomer = Annotated[str, Depends(existing_customer)]
CustomerForUpdate = Annotated[str, Depends(customer_for_update)]
