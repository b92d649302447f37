"""Shapes of the quarantine API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class QuarantineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    source: str
    boss_event_id: str | None
    event_type: str | None
    reason: str
    field: str | None
    raw: str
    status: str
    received_at: datetime
