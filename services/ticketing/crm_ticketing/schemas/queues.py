"""Work queues (工单队列) and their agents (坐席) as the supervisors' console reads and writes them, camelCase like
the TMF resources."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StrictBool, StrictInt, StringConstraints, field_validator

from crm_kit.shapes import TmfModel
from crm_ticketing.schemas.trouble_ticket import Category, TmfBody

Strategy = Literal["round_robin", "least_loaded"]
"""round_robin 轮询: in turn; least_loaded 最少负荷: to whoever has fewest open tickets."""


class QueueInput(TmfBody):
    """A queue as a supervisor defines it (PUT: the whole of it). A queue with no categories is routed nothing unless
    it is a green channel (`keyAccounts`), which then takes key accounts' tickets of every category."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    categories: list[Category] = Field(default_factory=list, max_length=20, description="Ticket categories it serves")
    key_accounts: StrictBool = Field(
        False, alias="keyAccounts", description="The green channel (绿色通道): key accounts' tickets come here first"
    )
    strategy: Strategy = "least_loaded"

    @field_validator("categories")
    @classmethod
    def _each_once(cls, categories: list[str]) -> list[str]:
        if len(set(categories)) != len(categories):
            raise ValueError("must name each category once")
        return categories


class MembershipInput(TmfBody):
    """An agent's place in a queue: whether they take tickets now (not on break, on shift) and how many open ones
    they may hold before routing passes them over (none: no limit)."""

    available: StrictBool = True
    max_open: StrictInt | None = Field(None, alias="maxOpen", ge=1, le=1000)


class QueueAgentOut(TmfModel):
    agent_id: str = Field(alias="agentId")
    available: bool
    max_open: int | None = Field(None, alias="maxOpen")
    joined_at: AwareDatetime = Field(alias="joinedAt")
    open_tickets: int = Field(alias="openTickets", description="Open tickets assigned to the agent, in any queue")


class QueueLoad(TmfModel):
    """The backlog as it stands: open tickets in the queue, those nobody has yet (工单池), since when the oldest of
    those waits and how long that is."""

    open_tickets: int = Field(alias="openTickets")
    unassigned_tickets: int = Field(alias="unassignedTickets")
    oldest_unassigned_date: AwareDatetime | None = Field(None, alias="oldestUnassignedDate")
    oldest_unassigned_age_seconds: int | None = Field(None, alias="oldestUnassignedAgeSeconds")


class QueueOut(TmfModel):
    id: str
    href: str
    name: str
    categories: list[str]
    key_accounts: bool = Field(alias="keyAccounts")
    strategy: Strategy
    last_assignee: str | None = Field(None, alias="lastAssignee", description="Round robin: who had the last turn")
    agents: list[QueueAgentOut]
    load: QueueLoad
