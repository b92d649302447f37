"""Billing account shapes (账户): the account, its place in a group's hierarchy (集团→分支), and the bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crm_customer.schemas.customers import CamelStrict
from crm_kit.shapes import TmfModel

AccountType = Literal["individual", "group", "branch"]
AccountStatus = Literal["active", "suspended", "closed"]


class AccountCreate(CamelStrict):
    """A group or branch account opened in the CRM for a customer; lines reach it later through the BOSS feed."""

    customer_id: str = Field(alias="customerId", max_length=64)
    name: str = Field(min_length=1, max_length=200)
    account_type: Literal["group", "branch"] = Field(alias="accountType")
    parent_id: str | None = Field(None, alias="parentId", max_length=64)


class AccountPatch(CamelStrict):
    """JSON merge-patch of an account: `parentId: null` detaches it from its group."""

    name: str | None = Field(None, min_length=1, max_length=200)
    parent_id: str | None = Field(None, alias="parentId", max_length=64)
    status: AccountStatus | None = None


class AccountLine(TmfModel):
    id: str
    msisdn: str | None = Field(description="Masked unless pii:read with a reason")
    status: str


class AccountOut(TmfModel):
    id: str
    href: str
    name: str | None
    account_type: str = Field(alias="accountType")
    status: str
    customer_id: str = Field(alias="customerId")
    parent_id: str | None = Field(alias="parentId")
    children: list[str] = Field(description="Ids of the accounts directly below")
    lines: list[AccountLine]
    created_at: str | None = Field(alias="createdAt")
    updated_at: str | None = Field(alias="updatedAt")


class AccountNode(TmfModel):
    """One account in a hierarchy, with the accounts below it."""

    id: str
    name: str | None
    account_type: str = Field(alias="accountType")
    status: str
    customer_id: str = Field(alias="customerId")
    line_count: int = Field(alias="lineCount")
    children: list[AccountNode]
    truncated: bool = Field(False, description="More levels exist below the depth limit")
