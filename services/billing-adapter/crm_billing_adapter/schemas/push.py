"""Shapes of the push API (POST /boss/v1/events)."""

from typing import Literal

from pydantic import BaseModel, Field


class RecordOutcome(BaseModel):
    index: int = Field(description="Position of the record in the batch (0-based)")
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = Field(None, description="The BOSS event id, when the record had one")
    reason: str | None = None
    field: str | None = Field(None, description="The field at fault, e.g. records[3].data.msisdn")
    quarantine_id: str | None = None


class BatchReceipt(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[RecordOutcome]


class BossRecord(BaseModel):
    """One BOSS record. `data` must match the contract of `billing.<event_type>.v1`."""

    event_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$", examples=["BOSS-20261120-000001"])
    event_type: str = Field(examples=["subscription.activated"])
    data: dict[str, object]


class BossBatch(BaseModel):
    records: list[BossRecord] = Field(max_length=5000)
