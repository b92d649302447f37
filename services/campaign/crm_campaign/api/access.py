"""Who may do what: marketers and the retention team run campaigns; analysts and supervisors read them; the channel
gateways report deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends

from crm_kit.auth import Caller, Principal
from crm_kit.db import utcnow

CAMPAIGN_RUNNERS = ("marketer", "retention", "admin")
CAMPAIGN_READERS = (*CAMPAIGN_RUNNERS, "analyst", "supervisor")
CHANNEL_GATEWAYS = ("channel", "admin")
CONTACT_READERS = (*CAMPAIGN_READERS, "agent")
"""A customer's contacts: the campaign readers, and the agents who talk to the customer."""


async def campaign_runner(principal: Caller) -> Principal:
    principal.require_role(*CAMPAIGN_RUNNERS)
    return principal


async def campaign_reader(principal: Caller) -> Principal:
    principal.require_role(*CAMPAIGN_READERS)
    return principal


async def contact_reader(principal: Caller) -> Principal:
    principal.require_role(*CONTACT_READERS)
    return principal


async def channel_gateway(principal: Caller) -> Principal:
    principal.require_role(*CHANNEL_GATEWAYS)
    return principal


async def clock() -> datetime:
    """The instant a request happens at; tests put their own clock here."""
    return utcnow()


Runner = Annotated[Principal, Depends(campaign_runner)]
Reader = Annotated[Principal, Depends(campaign_reader)]
ContactReader = Annotated[Principal, Depends(contact_reader)]
Gateway = Annotated[Principal, Depends(channel_gateway)]
Now = Annotated[datetime, Depends(clock)]
