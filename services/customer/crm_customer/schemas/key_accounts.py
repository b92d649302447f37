"""Key-account (大客户) shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from crm_customer.schemas.billing import Amount
from crm_kit.shapes import Strict

Tier = Literal["strategic", "gold", "silver"]
ManagerId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^\S+$", description="The account manager's user id (客户经理)")
]


class KeyAccountIn(Strict):
    """Designate the customer a key account of `tier`, looked after by `account_manager` (or change either)."""

    tier: Tier = Field(description="strategic (战略), gold (金牌), silver (银牌)")
    account_manager: ManagerId
    reason: str = Field(min_length=3, max_length=300)


class ReassignIn(Strict):
    """Hand the key account to another account manager (客户经理变更)."""

    to_manager: ManagerId
    reason: str = Field(min_length=3, max_length=300)


class KeyAccountOut(BaseModel):
    customer_id: str
    key_account: bool
    tier: Tier | None
    account_manager: str | None


class AssignmentOut(BaseModel):
    """One change of the key account: designation, tier change, reassignment or revocation."""

    id: int
    customer_id: str
    change: Literal["designated", "tier_changed", "reassigned", "revoked"]
    from_manager: str | None
    to_manager: str | None
    tier: Tier | None
    reason: str | None
    changed_by: str
    changed_at: str = Field(description="China Standard Time (+08:00)")


class PortfolioRowOut(BaseModel):
    """A key account as its manager's portfolio lists it."""

    customer_id: str
    name: str | None
    tier: Tier | None
    account_manager: str | None
    status: str
    active_lines: int
    arpu: Amount | None = Field(description="From the customer's metrics; null until they are computed")
    value_tier: str | None = Field(description="high, mid, low (价值分层), from the customer's metrics")
