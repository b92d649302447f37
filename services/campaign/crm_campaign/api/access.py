"""Who may do what: marketers and the retention team run campaigns; analysts and supervisors read them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends

from crm_kit.auth import Caller, Principal
from crm_kit.db import utcnow

CAMPAIGN_RUNNERS = ("marketer", "retention", "admin")
CAMPAIGN_READERS = (*CAMPAIGN_RUNNERS, "analyst", "supervisor")


async def campaign_runner(principal: Caller) -> Principal:
    principal.require_role(*CAMPAIGN_RUNNERS)
    return principal


async def campaign_reader(principal: Caller) -> Principal:
    principal.require_role(*CAMPAIGN_READERS)
    return principal


async def clock() -> datetime:
    """The instant a request happens at; tests put their own clock here."""
    return utcnow()


Runner = Annotated[Principal, Depends(campaign_runner)]
Reader = Annotated[Principal, Depends(campaign_reader)]
Now = Annotated[datetime, Depends(clock)]
