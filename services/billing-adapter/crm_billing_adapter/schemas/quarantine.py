"""Shapes of the quarantine API (隔离区)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema, model_validator

from crm_kit.presentation import shanghai

ShanghaiTime = Annotated[
    datetime, PlainSerializer(shanghai, return_type=str), WithJsonSchema({"type": "string", "format": "date-time"})
]
"""Stored in UTC, shown in China Standard Time with its offset."""


class Strict(BaseModel):
    """A request body: an unknown field is a mistake worth naming, not something to ignore."""

    model_config = ConfigDict(extra="forbid")


class QuarantineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    boss_event_id: str | None
    event_type: str | None
    reason: str = Field(description="Why the record was rejected (updated by a replay that fails again)")
    field: str | None = Field(description="The field at fault")
    raw: str = Field(description="The record as the BOSS sent it")
    status: Literal["open", "replayed", "discarded"]
    received_at: ShanghaiTime
    job_id: str | None = Field(description="The file import the record came from, if any")
    line_no: int | None = Field(description="Its line in that file")
    fixed_raw: str | None = Field(description="The corrected record an operator saved; a replay sends this")
    replayed_event_id: str | None = Field(description="The CloudEvent id the replayed record was published under")
    resolved_at: ShanghaiTime | None
    resolved_by: str | None = Field(description="Who replayed or discarded it (the token's subject)")
    resolution_note: str | None


class FieldCount(BaseModel):
    field: str = Field(description="Where in a record it went wrong, whatever the record's place in its batch")
    count: int
    example: str = Field(description="One of the reasons given")


class EventTypeCount(BaseModel):
    event_type: str | None = Field(description="null when the record's type could not be read or is unknown")
    count: int


class QuarantineSummary(BaseModel):
    open: int
    oldest_open_at: ShanghaiTime | None
    by_field: list[FieldCount]
    by_event_type: list[EventTypeCount]


class DiscardRequest(Strict):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] = Field(
        description="Why the record is given up (e.g. the BOSS re-sent it under a new id)"
    )


class ReplayRequest(Strict):
    """Either `ids`, or a filter: the open records of one event type and/or one file import."""

    ids: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(None, min_length=1, max_length=1000)
    event_type: str | None = Field(None, max_length=128, examples=["subscription.activated"])
    job_id: str | None = Field(None, max_length=36)

    @model_validator(mode="after")
    def ids_or_filter(self) -> ReplayRequest:
        by_filter = self.event_type is not None or self.job_id is not None
        if (self.ids is None) == (not by_filter):
            raise ValueError("send either ids or a filter (event_type, job_id), not both and not neither")
        return self


class ReplayOutcome(BaseModel):
    id: str = Field(description="The quarantine id")
    status: Literal["accepted", "duplicate", "rejected", "skipped"]
    event_id: str | None = Field(None, description="The BOSS event id, when known")
    replayed_event_id: str | None = None
    reason: str | None = Field(None, description="Why it was rejected again, or why it was skipped")
    field: str | None = None


class ReplayReceipt(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    skipped: int
    remaining: int = Field(description="Open records matching the filter beyond this call's 1,000; call again")
    results: list[ReplayOutcome]


class ReplayAnswer(BaseModel):
    outcome: Literal["accepted", "duplicate"]
    detail: str
    entry: QuarantineEntry
