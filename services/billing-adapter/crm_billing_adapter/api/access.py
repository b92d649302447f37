"""Who may work the adapter's operator routes: billing operations staff (计费运维) and administrators.

The quarantine holds raw BOSS payloads (names, ID numbers, phone numbers), so every route there needs a
bearer JWT (crm_kit.auth) with one of these roles: none is 401, another role is 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_kit.auth import Caller, Principal

BILLING_OPS = ("billing_ops", "admin")


async def billing_ops(principal: Caller) -> Principal:
    principal.require_role(*BILLING_OPS)
    return principal


BillingOps = Annotated[Principal, Depends(billing_ops)]
